package phone

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// e164Inputs generates numbers around every region's example numbers (valid ones, with a
// national prefix inserted, with digits changed, cut or added, with leading zeros) and
// random "+digits" strings for every country code, plus shapes that are not E.164.
func e164Inputs(r *rand.Rand) []string {
	var out []string
	add := func(s string) { out = append(out, s) }
	types := []phonenumbers.PhoneNumberType{phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.TOLL_FREE,
		phonenumbers.PREMIUM_RATE, phonenumbers.VOIP, phonenumbers.PAGER, phonenumbers.UAN, phonenumbers.PERSONAL_NUMBER}
	for region := range phonenumbers.GetSupportedRegions() {
		for _, typ := range types {
			n := phonenumbers.GetExampleNumberForType(region, typ)
			if n == nil {
				continue
			}
			e := phonenumbers.Format(n, phonenumbers.E164)
			cc := strconv.Itoa(int(n.GetCountryCode()))
			nat := e[1+len(cc):]
			add(e)
			if p := phonenumbers.GetNddPrefixForRegion(region, true); p != "" {
				add("+" + cc + p + nat) // "+7 8 900...": Parse strips the 8
			}
			add("+" + cc + "0" + nat)
			add("+" + cc + "00" + nat)
			add(e[:len(e)-1])
			add(e + strconv.Itoa(r.IntN(10)))
			b := []byte(e)
			b[1+len(cc)+r.IntN(len(nat))] = byte('0' + r.IntN(10))
			add(string(b))
			add(" " + e)
			add(e + "\n")
			add(strings.Replace(e, "+", "+ ", 1))
			add(strings.Replace(e, "+", "", 1))
			add(strings.Replace(e, "+", "＋", 1))
			add(e + "#")
			add(e + ";ext=12")
			add(e + "x12")
		}
	}
	for cc := 1; cc < 1000; cc++ {
		for range 1 {
			n := 1 + r.IntN(20)
			var b strings.Builder
			b.WriteString("+" + strconv.Itoa(cc))
			for range n {
				b.WriteByte(byte('0' + r.IntN(10)))
			}
			add(b.String())
		}
	}
	for range 500 {
		var b strings.Builder
		b.WriteByte('+')
		for range r.IntN(25) {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		add(b.String())
	}
	add("")
	add("+")
	add("+0")
	add("+01234567890")
	add("++79001234567")
	add("+7900123456７")
	return out
}

// TestNormalizeFastPathMatchesParse holds the fast path to the slow one: for every input
// and region, the same result and the same error; and wherever parseE164 answers, the same
// PhoneNumber as phonenumbers.Parse.
func TestNormalizeFastPathMatchesParse(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 8))
	inputs := e164Inputs(r)
	regions := []string{"RU", "US", "", "ZZ", "001", "IT", "AR", "de", "KZ", "BR"}
	fast, valid := 0, 0
	tested := 0
	for i, in := range inputs {
		if i%sampleEvery != 0 {
			continue
		}
		tested++
		region := regions[(i/sampleEvery)%len(regions)]
		got, err := Normalize(in, region)
		want, werr := normalizeSlow(in, region)
		if got != want || (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) {
			t.Fatalf("Normalize(%q, %q) = %q, %v; the slow path gives %q, %v", in, region, got, err, want, werr)
		}
		if werr == nil {
			valid++
		}
		n, ok := parseE164(in)
		if !ok {
			continue
		}
		fast++
		p, perr := phonenumbers.Parse(in, region)
		if perr != nil {
			t.Fatalf("parseE164(%q) accepted what Parse(%q) refuses: %v", in, region, perr)
		}
		if n.CountryCode == nil || n.NationalNumber == nil || p.GetCountryCode() != n.GetCountryCode() ||
			p.GetNationalNumber() != n.GetNationalNumber() || (p.ItalianLeadingZero == nil) != (n.ItalianLeadingZero == nil) ||
			p.GetItalianLeadingZero() != n.GetItalianLeadingZero() || (p.NumberOfLeadingZeros == nil) != (n.NumberOfLeadingZeros == nil) ||
			p.GetNumberOfLeadingZeros() != n.GetNumberOfLeadingZeros() || p.Extension != nil || p.RawInput != nil ||
			p.CountryCodeSource != nil || p.PreferredDomesticCarrierCode != nil {
			t.Fatalf("parseE164(%q) = %v, Parse(%q) = %v", in, n, region, p)
		}
	}
	// The fast path must actually carry the common case, or this test would prove nothing.
	if fast < tested/4 || valid < tested/10 {
		t.Fatalf("of %d inputs the fast path read %d and %d were valid", tested, fast, valid)
	}
	t.Logf("%d inputs, %d read by the fast path, %d valid", tested, fast, valid)
}

func TestParseE164Declines(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"+789001234567", // "+7 8 900...": RU's national prefix 8 might be stripped
		"+78005553535",  // the same prefix check holds back toll-free +7 800 numbers
		"79001234567",   // no plus
		"+7 9001234567", // a space
		"+09001234567",  // no country code starts with 0
		"+9991234567",   // 999 is no country code
		"+7900123456789012345678",
	} {
		if _, ok := parseE164(in); ok {
			t.Errorf("parseE164(%q) answered; it must leave it to Parse", in)
		}
	}
	if n, ok := parseE164("+79001234567"); !ok || n.GetCountryCode() != 7 || n.GetNationalNumber() != 9001234567 {
		t.Errorf("parseE164(+79001234567) = %v, %v", n, ok)
	}
}
