package mem_test

import (
	"testing"

	"floe/archive"
	"floe/archive/archivetest"
	"floe/archive/mem"
)

func TestAcceptance(t *testing.T) {
	archivetest.Run(t, func(t *testing.T) archive.Bucket { return mem.New(t.Name()) })
}

func TestOpenSharesNamedBuckets(t *testing.T) {
	a, b := mem.Open("shared-"+t.Name()), mem.Open("shared-"+t.Name())
	if a != b {
		t.Fatalf("Open of the same name returned different buckets")
	}
	if mem.Open("") == mem.Open("") {
		t.Fatalf("Open of the empty name returned a shared bucket")
	}
}
