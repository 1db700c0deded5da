package topicname

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true}, {"orders.v1_eu-west", true}, {"A-b_c.d", true}, {"...", true},
		{strings.Repeat("x", MaxLen), true},
		{"", false}, {".", false}, {"..", false}, {"../x", false}, {"../escape", false},
		{"a/b", false}, {"a b", false}, {"sp ace", false}, {"é", false}, {"ünï", false},
		{"a\x00", false}, {"a\x00b", false}, {strings.Repeat("x", MaxLen+1), false},
	} {
		err := Validate(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%q) error %v does not wrap ErrInvalid", tc.name, err)
		}
	}
}

// TestErrorText pins the reason a client reads: the wire and HTTP layers send
// the error text as it is, and clients and scripts match on its start.
func TestErrorText(t *testing.T) {
	err := Validate("../x")
	if got, want := err.Error(), `invalid topic name: "../x": character '/' at 2 (allowed: A-Z a-z 0-9 . _ -)`; got != want {
		t.Errorf("Validate(\"../x\") = %q, want %q", got, want)
	}
}

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   uint64
		key  string
	}{
		{"orders", 0, "orders"}, {"orders", 7, "orders@7"}, {"a.b-c_d", 18446744073709551615, "a.b-c_d@18446744073709551615"},
	} {
		if got := Key(tc.name, tc.id); got != tc.key {
			t.Errorf("Key(%q, %d) = %q, want %q", tc.name, tc.id, got, tc.key)
		}
		name, id, err := SplitKey(tc.key)
		if err != nil || name != tc.name || id != tc.id {
			t.Errorf("SplitKey(%q) = %q, %d, %v; want %q, %d", tc.key, name, id, err, tc.name, tc.id)
		}
		if NameOf(tc.key) != tc.name {
			t.Errorf("NameOf(%q) = %q", tc.key, NameOf(tc.key))
		}
	}
	for _, bad := range []string{"", "@1", "a@", "a@0", "a@01", "a@-1", "a@1@2", "a@x", "a/b@1", "..@3", "a@18446744073709551616", "a@ 1"} {
		if _, _, err := SplitKey(bad); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("SplitKey(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

// FuzzSplitKey: SplitKey never accepts what Key would not build, and Key
// inverts it.
func FuzzSplitKey(f *testing.F) {
	for _, s := range []string{"a", "a@1", "a@0", "a@01", "x.y@42", "@", "a@@1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		name, id, err := SplitKey(key)
		if err != nil {
			return
		}
		if Validate(name) != nil || Key(name, id) != key {
			t.Fatalf("SplitKey(%q) = %q, %d: Key gives %q", key, name, id, Key(name, id))
		}
	})
}
