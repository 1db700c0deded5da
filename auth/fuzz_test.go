package auth

import (
	"slices"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics; what it accepts round-trips (the table's lines parse
// to a table with the same grants, and every grant is well-formed); what it refuses
// it refuses without quoting the input.
func FuzzParse(f *testing.F) {
	a, b := hashOf("token-a"), hashOf("token-b")
	for _, s := range []string{
		"",
		"# comment\n\n",
		a + " read\n",
		a + " write orders.\n" + a + " admin\n" + b + " read ..\n",
		"\ufeff" + strings.ToUpper(a) + "\tread # c\r\n",
		a + " admin orders. extra\n",
		"raw-token-pasted-here read\n",
		a + " read orders/\n",
		a[:20] + "\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, file string) {
		tab, err := Parse(strings.NewReader(file))
		if err != nil {
			// The error is built from fixed text, numbers and counts: no field of the
			// input long enough to be a token appears in it.
			for _, field := range strings.Fields(file) {
				if len(field) >= 12 && strings.Contains(err.Error(), field) {
					t.Fatalf("error %q quotes the input field %q", err, field)
				}
			}
			return
		}
		for d, gs := range tab.tokens {
			if len(gs) == 0 {
				t.Fatalf("digest %x with no grant", d)
			}
			for _, g := range gs {
				if g.role < Read || g.role > Admin || (g.prefix != "" && !validPrefix(g.prefix)) {
					t.Fatalf("parsed %q to the bad grant %+v", file, g)
				}
			}
		}
		lines := tab.Lines()
		again, err := Parse(strings.NewReader(strings.Join(lines, "\n")))
		if err != nil {
			t.Fatalf("the lines %q of a parsed table do not parse: %v", lines, err)
		}
		if got := again.Lines(); !slices.Equal(got, lines) || again.Len() != tab.Len() {
			t.Fatalf("round trip: %q, then %q", lines, got)
		}
		for d, gs := range tab.tokens {
			if !sameGrants(gs, again.tokens[d]) {
				t.Fatalf("round trip: %x has %+v, then %+v", d, gs, again.tokens[d])
			}
		}
	})
}

// sameGrants reports whether a and b hold the same grants, in any order.
func sameGrants(a, b []grant) bool {
	if len(a) != len(b) {
		return false
	}
	for _, g := range a {
		if !slices.Contains(b, g) {
			return false
		}
	}
	return true
}
