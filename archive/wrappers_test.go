package archive_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"floe/archive"
	"floe/archive/archivetest"
	"floe/archive/mem"
)

func TestPrefixAcceptance(t *testing.T) {
	archivetest.Run(t, func(t *testing.T) archive.Bucket {
		under := mem.New(t.Name())
		// An object beside the prefix must never show through the view.
		if err := under.Put(t.Context(), "pre/fixed", strings.NewReader("x"), 1, archive.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		return archive.WithPrefix(under, "/pre/fix/")
	})
}

func TestPrefixLayout(t *testing.T) {
	ctx := context.Background()
	under := mem.New("under")
	b := archive.WithPrefix(under, "floe/prod")
	if err := b.Put(ctx, "topics/t/1.seg", strings.NewReader("abc"), 3, archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := under.Stat(ctx, "floe/prod/topics/t/1.seg"); err != nil {
		t.Fatalf("object not stored under the prefix: %v", err)
	}
	info, err := b.Stat(ctx, "topics/t/1.seg")
	if err != nil || info.Key != "topics/t/1.seg" {
		t.Fatalf("Stat = %+v, %v; want the key without prefix", info, err)
	}
	if got := archive.WithPrefix(under, "//"); got != archive.Bucket(under) {
		t.Fatalf("WithPrefix with an empty prefix wrapped the bucket")
	}
}

func TestMetricsAcceptance(t *testing.T) {
	archivetest.Run(t, func(t *testing.T) archive.Bucket {
		return archive.WithMetrics(mem.New(t.Name()), prometheus.NewPedanticRegistry(), prometheus.Labels{"bucket": "test"})
	})
}

func TestMetricsCounts(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewPedanticRegistry()
	b := archive.WithMetrics(mem.New("m"), reg, nil)
	data := []byte("0123456789")
	if err := b.Put(ctx, "k", bytes.NewReader(data), 10, archive.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "k", bytes.NewReader(data), 10, archive.PutOptions{IfNoneMatch: true}); !archive.IsExists(err) {
		t.Fatalf("conditional Put: %v", err)
	}
	rc, err := b.GetRange(ctx, "k", 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(rc)
	rc.Close()
	if _, err := b.Stat(ctx, "missing"); !archive.IsNotFound(err) {
		t.Fatal(err)
	}
	stop := context.Canceled
	if err := b.List(ctx, "", func(archive.ObjectInfo) error { return stop }); err != stop {
		t.Fatalf("List error = %v; want the callback's", err)
	}

	// A second view on the same registry shares the collectors instead of failing.
	b2 := archive.WithMetrics(mem.New("m2"), reg, nil)
	if _, err := b2.Stat(ctx, "missing"); !archive.IsNotFound(err) {
		t.Fatal(err)
	}

	if n, err := testutil.GatherAndCount(reg); err != nil || n == 0 {
		t.Fatalf("gather: %d series, %v", n, err)
	}
	mv := func(name string, labels ...string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		next:
			for _, m := range mf.GetMetric() {
				for i := 0; i < len(labels); i += 2 {
					found := false
					for _, lp := range m.GetLabel() {
						if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
							found = true
						}
					}
					if !found {
						continue next
					}
				}
				if m.GetHistogram() != nil {
					return float64(m.GetHistogram().GetSampleCount())
				}
				return m.GetCounter().GetValue()
			}
		}
		return 0
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"floe_archive_operations_total", []string{"operation", "put"}, 2},
		{"floe_archive_operation_errors_total", []string{"operation", "put", "kind", "exists"}, 1},
		{"floe_archive_bytes_total", []string{"operation", "put"}, 20}, // mem reads a body before refusing it
		{"floe_archive_bytes_total", []string{"operation", "get_range"}, 5},
		{"floe_archive_operations_total", []string{"operation", "stat"}, 2},
		{"floe_archive_operation_errors_total", []string{"operation", "stat", "kind", "not_found"}, 2},
		{"floe_archive_operations_total", []string{"operation", "list"}, 1},
		{"floe_archive_operation_errors_total", []string{"operation", "list", "kind", "canceled"}, 0},
		{"floe_archive_operation_duration_seconds", []string{"operation", "get_range"}, 1},
	} {
		if got := mv(tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v; want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}
