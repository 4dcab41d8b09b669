package phone

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// ccNSN is a number as validNSN takes it.
type ccNSN struct {
	cc  int
	nsn string
}

func (n ccNSN) e164() string { return "+" + strconv.Itoa(n.cc) + n.nsn }

// libNumber is the PhoneNumber that phonenumbers.Parse gives for "+cc nsn" when it strips
// nothing: the national number with its leading zeros recorded as Parse records them.
func libNumber(t testing.TB, n ccNSN) *phonenumbers.PhoneNumber {
	t.Helper()
	nn, err := strconv.ParseUint(n.nsn, 10, 64)
	if err != nil {
		t.Fatalf("national number %q: %v", n.nsn, err)
	}
	num := &phonenumbers.PhoneNumber{CountryCode: new(int32(n.cc)), NationalNumber: new(nn)}
	if len(n.nsn) >= 2 && n.nsn[0] == '0' {
		num.ItalianLeadingZero = new(true)
		zeros := 1
		for zeros < len(n.nsn)-1 && n.nsn[zeros] == '0' {
			zeros++
		}
		num.NumberOfLeadingZeros = new(int32(zeros))
	}
	// validNSN's contract: nsn is what the library validates.
	if got := phonenumbers.GetNationalSignificantNumber(num); got != n.nsn {
		t.Fatalf("GetNationalSignificantNumber(%v) = %q, want %q", num, got, n.nsn)
	}
	return num
}

// checkValid fails t unless validNSN decides n and agrees with phonenumbers.IsValidNumber;
// it returns the answer.
func checkValid(t testing.TB, n ccNSN) bool {
	t.Helper()
	want := phonenumbers.IsValidNumber(libNumber(t, n))
	got, decided := validNSN(n.cc, n.nsn)
	if !decided {
		t.Fatalf("validNSN(%d, %q) left the number to the library", n.cc, n.nsn)
	}
	if got != want {
		t.Fatalf("validNSN(%d, %q) = %v, phonenumbers.IsValidNumber = %v", n.cc, n.nsn, got, want)
	}
	return want
}

// exampleNumbers are libphonenumber's example numbers: every supported region's for every
// number type, and every non-geographical entity's.
func exampleNumbers() []ccNSN {
	var out []ccNSN
	add := func(n *phonenumbers.PhoneNumber) {
		if n != nil {
			out = append(out, ccNSN{int(n.GetCountryCode()), phonenumbers.GetNationalSignificantNumber(n)})
		}
	}
	regions := slices.Sorted(func(yield func(string) bool) {
		for r := range phonenumbers.GetSupportedRegions() {
			if !yield(r) {
				return
			}
		}
	})
	for _, region := range regions {
		for typ := phonenumbers.FIXED_LINE; typ <= phonenumbers.UNKNOWN; typ++ {
			add(phonenumbers.GetExampleNumberForType(region, typ))
		}
	}
	for cc := range phonenumbers.GetSupportedGlobalNetworkCallingCodes() {
		add(phonenumbers.GetExampleNumberForNonGeoEntity(cc))
	}
	return out
}

// mutations are n with each digit changed to each other digit, a digit added at each end
// and each digit removed: the numbers next to a valid one, where patterns and lengths
// decide.
func mutations(n ccNSN) []ccNSN {
	var out []ccNSN
	add := func(s string) {
		if s != "" && len(s) <= maxNSN {
			out = append(out, ccNSN{n.cc, s})
		}
	}
	for i := range len(n.nsn) {
		for d := byte('0'); d <= '9'; d++ {
			if d != n.nsn[i] {
				add(n.nsn[:i] + string(d) + n.nsn[i+1:])
			}
		}
		add(n.nsn[:i] + n.nsn[i+1:])
	}
	for d := byte('0'); d <= '9'; d++ {
		add(n.nsn + string(d))
		add(string(d) + n.nsn)
	}
	return out
}

// randomNumbers are perCode pseudo-random national numbers for every calling code: mostly an
// example number's prefix filled up with random digits to about its length (to land in the
// code's ranges and near its lengths), the rest random digit strings of any length.
func randomNumbers(r *rand.Rand, examples []ccNSN, perCode int) []ccNSN {
	byCode := map[int][]string{}
	for _, e := range examples {
		byCode[e.cc] = append(byCode[e.cc], e.nsn)
	}
	codes := slices.Sorted(func(yield func(int) bool) {
		for cc := range phonenumbers.GetSupportedCallingCodes() {
			if !yield(cc) {
				return
			}
		}
	})
	var out []ccNSN
	digits := func(b []byte, n int) []byte {
		for range n {
			b = append(b, byte('0'+r.IntN(10)))
		}
		return b
	}
	for _, cc := range codes {
		seeds := byCode[cc]
		for range perCode {
			var b []byte
			if len(seeds) > 0 && r.IntN(5) != 0 {
				s := seeds[r.IntN(len(seeds))]
				length := min(max(len(s)+r.IntN(3)-1, 1), maxNSN)
				b = append(b, s[:r.IntN(min(len(s), length)+1)]...)
				b = digits(b, length-len(b))
			} else {
				b = digits(b, 1+r.IntN(maxNSN))
			}
			out = append(out, ccNSN{cc, string(b)})
		}
	}
	return out
}

// TestValidNSNMatchesLibrary holds validNSN to phonenumbers.IsValidNumber on the example
// numbers, their mutations and random numbers of every calling code, and Normalize to
// normalizeSlow on a sample of them.
func TestValidNSNMatchesLibrary(t *testing.T) {
	t.Parallel()
	examples := exampleNumbers()
	if len(examples) < 1000 {
		t.Fatalf("only %d example numbers", len(examples))
	}
	// Every example; under the race detector the mutations of a sample of them and fewer
	// random numbers.
	corpus := slices.Clone(examples)
	for i, e := range examples {
		if i%sampleEvery == 0 {
			corpus = append(corpus, mutations(e)...)
		}
	}
	corpus = append(corpus, randomNumbers(rand.New(rand.NewPCG(1, 2)), examples, 200/sampleEvery)...)

	regions := []string{"RU", "US", "", "IT"}
	compared, valid, viaNormalize := 0, 0, 0
	for i, n := range corpus {
		compared++
		if checkValid(t, n) {
			valid++
		}
		if i%7 == 0 {
			viaNormalize++
			in, region := n.e164(), regions[i%len(regions)]
			got, err := Normalize(in, region)
			want, werr := normalizeSlow(in, region)
			if got != want || (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) {
				t.Fatalf("Normalize(%q, %q) = %q, %v; the slow path gives %q, %v", in, region, got, err, want, werr)
			}
		}
	}
	// Both answers must be well represented, or agreement would prove little.
	if valid < compared/10 || compared-valid < compared/10 {
		t.Fatalf("of %d numbers %d are valid", compared, valid)
	}
	t.Logf("%d numbers compared with phonenumbers.IsValidNumber (%d valid, %d examples), %d through Normalize",
		compared, valid, len(examples), viaNormalize)
}

// TestValidNSNDecidesEveryCode: no supported calling code is left to the library, so the
// fast path is the path for all of them; and codes that have no regions are invalid.
func TestValidNSNDecidesEveryCode(t *testing.T) {
	t.Parallel()
	for cc := range 1000 {
		_, decided := validNSN(cc, "1234567")
		_, supported := phonenumbers.GetSupportedCallingCodes()[cc]
		switch {
		case cc == 0:
			if decided {
				t.Errorf("validNSN decided calling code 0")
			}
		case !decided:
			t.Errorf("validNSN left calling code %d to the library", cc)
		case !supported:
			checkValid(t, ccNSN{cc, "1234567"})
		}
	}
	if _, decided := validNSN(7, "123456789012345678"); decided {
		t.Errorf("validNSN decided a national number longer than %d digits", maxNSN)
	}
}

// TestValidNSNConcurrent compiles calling codes from many goroutines at once (for -race)
// and checks every goroutine gets the library's answer.
func TestValidNSNConcurrent(t *testing.T) {
	t.Parallel()
	nums := []ccNSN{{7, "9001234567"}, {7, "7011234567"}, {1, "6502530000"}, {44, "7797123456"},
		{39, "0612345678"}, {800, "12345678"}, {263, "771234567"}, {599, "95181234"}}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, n := range nums {
				want := phonenumbers.IsValidNumber(libNumber(t, n))
				if got, decided := validNSN(n.cc, n.nsn); !decided || got != want {
					t.Errorf("validNSN(%d, %q) = %v, %v; want %v", n.cc, n.nsn, got, decided, want)
				}
			}
		})
	}
	wg.Wait()
}

// FuzzValid compares validNSN with phonenumbers.IsValidNumber, and Normalize with
// normalizeSlow, on any calling code and digit string.
func FuzzValid(f *testing.F) {
	examples := exampleNumbers()
	for i, e := range examples {
		if i%sampleEvery == 0 {
			f.Add(uint16(e.cc), e.nsn)
		}
	}
	for i, n := range randomNumbers(rand.New(rand.NewPCG(3, 4)), examples, 2) {
		if i%sampleEvery == 0 {
			f.Add(uint16(n.cc), n.nsn)
		}
	}
	f.Fuzz(func(t *testing.T, code uint16, nsn string) {
		n := ccNSN{int(code % 1000), nsn}
		if nsn == "" || len(nsn) > maxNSN+2 {
			return
		}
		for i := range len(nsn) {
			if nsn[i] < '0' || nsn[i] > '9' {
				return
			}
		}
		if n.cc == 0 || len(nsn) > maxNSN {
			if _, decided := validNSN(n.cc, nsn); decided {
				t.Fatalf("validNSN(%d, %q) decided", n.cc, nsn)
			}
		} else {
			checkValid(t, n)
		}
		got, err := Normalize(n.e164(), "RU")
		want, werr := normalizeSlow(n.e164(), "RU")
		if got != want || (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) {
			t.Fatalf("Normalize(%q) = %q, %v; the slow path gives %q, %v", n.e164(), got, err, want, werr)
		}
	})
}
