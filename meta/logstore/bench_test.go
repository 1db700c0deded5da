package logstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkStoreLogs measures one fsynced StoreLogs call of batch entries of size
// bytes each; raft's MaxAppendEntries defaults to 64.
func BenchmarkStoreLogs(b *testing.B) {
	for _, batch := range []int{1, 16, 64} {
		for _, size := range []int{128, 4096} {
			b.Run(fmt.Sprintf("batch=%d/size=%d", batch, size), func(b *testing.B) {
				s := openStore(b)
				data := make([]byte, size)
				logs := make([]*raft.Log, batch)
				for i := range logs {
					logs[i] = &raft.Log{Term: 1, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()}
				}
				b.SetBytes(int64(batch * size))
				b.ReportAllocs()
				next := uint64(1)
				for b.Loop() {
					for _, l := range logs {
						l.Index = next
						next++
					}
					if err := s.StoreLogs(logs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

// BenchmarkGetLog measures reading back recent entries, as replication to a follower
// does.
func BenchmarkGetLog(b *testing.B) {
	s := openStore(b)
	const n = 1024
	if err := s.StoreLogs(entries(1, n, 1)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var l raft.Log
	i := uint64(0)
	for b.Loop() {
		if err := s.GetLog(i%n+1, &l); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
