package phone

import (
	"regexp"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// The validity check below is phonenumbers.IsValidNumber for a number given as its country
// calling code and national significant number, on patterns compiled once per calling code.
// The library's own check rebuilds each anchored pattern string and looks it up in a
// mutex-guarded cache for every test, walks all regions of a shared code twice, and needs a
// *PhoneNumber whose national number it formats back to a string: that was half of the
// importer's CPU per row.
//
// The algorithm is the library's (v1.8.1), step for step:
//
//	IsValidNumber: region := GetRegionCodeForNumber; IsValidNumberForRegion(region)
//	GetRegionCodeForNumber: the code's only region, or the first of its regions whose
//	  leading digits prefix-match the number or, when it has none, for which
//	  getNumberTypeHelper is not UNKNOWN; "" (invalid) when none does
//	IsValidNumberForRegion: false unless the region's metadata exists and has this calling
//	  code (the non-geographical "001" is looked up by calling code); then
//	  getNumberTypeHelper != UNKNOWN
//	getNumberTypeHelper != UNKNOWN: the general description matches and so does one of
//	  premium rate, toll free, shared cost, VoIP, personal number, pager, UAN, voicemail,
//	  fixed line, or mobile unless sameMobileAndFixedLinePattern
//	isNumberMatchingDesc: the length is among the description's possible lengths (any
//	  length when it lists none) and "^(?:pattern)$" matches
//
// Only whether some type matches counts, not which, so the types are tried mobile and fixed
// line first: the common answer comes after two matches instead of ten. Whatever the table
// cannot represent exactly (a region without metadata, a missing description, a pattern Go
// cannot compile) leaves its whole calling code to phonenumbers.IsValidNumber.

// desc is a compiled PhoneNumberDesc: isNumberMatchingDesc is lengthOK && re.MatchString.
type desc struct {
	anyLength bool   // the description lists no possible lengths
	lengths   uint32 // bit n: length n is possible (the library's -1, "no numbers", sets none)
	re        *regexp.Regexp
}

func (d *desc) matches(nsn string) bool {
	return (d.anyLength || d.lengths&(1<<len(nsn)) != 0) && d.re.MatchString(nsn)
}

// region is one region's metadata as the validity check reads it.
type region struct {
	leading *regexp.Regexp // "^(?:leadingDigits)", nil when the region has none
	general desc
	types   []desc // the number types that make a number valid, most common first
}

// valid is getNumberTypeHelper(nsn, metadata) != UNKNOWN.
func (r *region) valid(nsn string) bool {
	if !r.general.matches(nsn) {
		return false
	}
	for i := range r.types {
		if r.types[i].matches(nsn) {
			return true
		}
	}
	return false
}

// callingCode holds the regions of one country calling code in the library's order.
type callingCode struct {
	once    sync.Once
	decided bool // false: leave the code to phonenumbers.IsValidNumber
	regions []region
}

// metadataByRegion indexes phonenumbers' metadata as the library does: geographical regions
// by id, non-geographical entities ("001") by calling code. Nil when the metadata cannot
// be read, and every number then goes to the library.
var metadataByRegion = sync.OnceValue(func() *metadataIndex {
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return nil
	}
	x := &metadataIndex{regions: map[string]*phonenumbers.PhoneMetadata{}, nonGeo: map[int]*phonenumbers.PhoneMetadata{}}
	for _, m := range coll.GetMetadata() {
		if m.GetId() == nonGeoRegion {
			x.nonGeo[int(m.GetCountryCode())] = m
		} else {
			x.regions[m.GetId()] = m
		}
	}
	return x
})

// nonGeoRegion is the library's REGION_CODE_FOR_NON_GEO_ENTITY.
const nonGeoRegion = "001"

type metadataIndex struct {
	regions map[string]*phonenumbers.PhoneMetadata
	nonGeo  map[int]*phonenumbers.PhoneMetadata
}

// callingCodes is compiled lazily per code, so that a worker that only ever sees +7 and +1
// compiles a few dozen patterns, not the thousands of all regions.
var callingCodes [1000]callingCode

// validNSN reports phonenumbers.IsValidNumber for the number with calling code cc and
// national significant number nsn (digits, leading zeros included, as
// phonenumbers.GetNationalSignificantNumber gives it). decided is false when the table
// cannot answer exactly and the caller must ask the library.
func validNSN(cc int, nsn string) (valid, decided bool) {
	if cc <= 0 || cc >= len(callingCodes) || len(nsn) > maxNSN {
		return false, false
	}
	c := &callingCodes[cc]
	c.once.Do(func() { c.regions, c.decided = compileCallingCode(cc) })
	if !c.decided {
		return false, false
	}
	switch len(c.regions) {
	case 0: // no regions: GetRegionCodeForNumber gives "", which has no metadata
		return false, true
	case 1:
		return c.regions[0].valid(nsn), true
	}
	for i := range c.regions {
		r := &c.regions[i]
		if r.leading != nil {
			if r.leading.MatchString(nsn) {
				return r.valid(nsn), true
			}
		} else if r.valid(nsn) {
			return true, true // found by full validation, which IsValidNumberForRegion repeats
		}
	}
	return false, true
}

// compileCallingCode builds the regions of cc; ok is false when one of them cannot be
// represented exactly.
func compileCallingCode(cc int) (regions []region, ok bool) {
	x := metadataByRegion()
	if x == nil {
		return nil, false
	}
	codes := phonenumbers.GetRegionCodesForCountryCode(cc)
	for _, code := range codes {
		var m *phonenumbers.PhoneMetadata
		if code == nonGeoRegion {
			// The library expects "001" alone; listed with others it is no supported
			// region and IsValidNumberForRegion would behave differently.
			if len(codes) != 1 {
				return nil, false
			}
			m = x.nonGeo[cc]
		} else {
			m = x.regions[code]
		}
		// A region without metadata or of another calling code makes
		// IsValidNumberForRegion false (and its search would dereference nil): rare
		// enough to leave to the library.
		if m == nil || int(m.GetCountryCode()) != cc {
			return nil, false
		}
		r, ok := compileRegion(m)
		if !ok {
			return nil, false
		}
		regions = append(regions, r)
	}
	return regions, true
}

func compileRegion(m *phonenumbers.PhoneMetadata) (region, bool) {
	var r region
	if ld := m.GetLeadingDigits(); ld != "" {
		re, err := regexp.Compile("^(?:" + ld + ")")
		if err != nil {
			return r, false
		}
		r.leading = re
	}
	var ok bool
	if r.general, ok = compileDesc(m.GetGeneralDesc()); !ok {
		return r, false
	}
	types := make([]*phonenumbers.PhoneNumberDesc, 0, 10)
	if !m.GetSameMobileAndFixedLinePattern() {
		types = append(types, m.GetMobile())
	}
	types = append(types, m.GetFixedLine(), m.GetPremiumRate(), m.GetTollFree(), m.GetSharedCost(),
		m.GetVoip(), m.GetPersonalNumber(), m.GetPager(), m.GetUan(), m.GetVoicemail())
	for _, t := range types {
		d, ok := compileDesc(t)
		if !ok {
			return r, false
		}
		if !d.anyLength && d.lengths == 0 {
			continue // no length is possible: the type never matches
		}
		r.types = append(r.types, d)
	}
	return r, true
}

func compileDesc(d *phonenumbers.PhoneNumberDesc) (desc, bool) {
	if d == nil {
		return desc{}, false // the library would dereference it
	}
	re, err := regexp.Compile("^(?:" + d.GetNationalNumberPattern() + ")$")
	if err != nil {
		return desc{}, false
	}
	out := desc{anyLength: len(d.GetPossibleLength()) == 0, re: re}
	for _, l := range d.GetPossibleLength() {
		if l >= 0 && l < 32 {
			out.lengths |= 1 << l
		}
	}
	return out, true
}
