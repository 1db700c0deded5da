package segment

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkAppend measures acknowledged 1 KiB appends from concurrent
// goroutines, each waiting for its fdatasync (Append), and from goroutines
// that pipeline a window of appends each (AppendAsync), like a connection
// handler with many PUTs in flight. It reports entries/s and the mean
// entries per fdatasync.
func BenchmarkAppend(b *testing.B) {
	cases := []struct {
		writers int // goroutines
		window  int // appends in flight per goroutine; 1 = Append
		noSync  bool
	}{
		{writers: 1, window: 1},
		{writers: 16, window: 1},
		{writers: 64, window: 1},
		{writers: 256, window: 1},
		{writers: 16, window: 16},
		{writers: 16, window: 64},
		{writers: 16, window: 1, noSync: true},
	}
	for _, c := range cases {
		name := fmt.Sprintf("writers=%d/window=%d", c.writers, c.window)
		if c.noSync {
			name += "/nosync"
		}
		b.Run(name, func(b *testing.B) {
			var syncs, records atomic.Int64
			opts := quiet()
			opts.NoSync = c.noSync
			opts.OnFlush = func(fi FlushInfo) {
				syncs.Add(1)
				records.Add(int64(fi.Records))
			}
			s, err := Open(filepath.Join(b.TempDir(), "bench.wal"), opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			payload := make([]byte, 1024)
			for i := range payload {
				payload[i] = byte(i)
			}
			b.SetBytes(int64(len(payload)))
			b.SetParallelism(max(1, (c.writers+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			if c.writers == 1 && c.window == 1 {
				for range b.N {
					if _, err := s.Append(payload); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					if c.window == 1 {
						for pb.Next() {
							if _, err := s.Append(payload); err != nil {
								b.Error(err)
								return
							}
						}
						return
					}
					ring := make([]Ack, 0, c.window)
					one := [][]byte{payload}
					for pb.Next() {
						if len(ring) == c.window {
							if _, err := ring[0].Wait(); err != nil {
								b.Error(err)
								return
							}
							ring = append(ring[:0], ring[1:]...)
						}
						ring = append(ring, s.AppendAsync(one))
					}
					for _, a := range ring {
						if _, err := a.Wait(); err != nil {
							b.Error(err)
						}
					}
				})
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			if n := syncs.Load(); n > 0 {
				b.ReportMetric(float64(records.Load())/float64(n), "entries/batch")
			}
		})
	}
}

// BenchmarkRead measures reads of 1 KiB records, 64 at a time.
func BenchmarkRead(b *testing.B) {
	opts := quiet()
	opts.NoSync = true
	s, err := Open(filepath.Join(b.TempDir(), "bench.wal"), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	payload := make([]byte, 1024)
	const n = 10_000
	batch := make([][]byte, 100)
	for i := range batch {
		batch[i] = payload
	}
	for range n / len(batch) {
		if _, err := s.AppendBatch(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(64 * int64(len(payload)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := uint64(0)
		for pb.Next() {
			if _, err := s.Read(i%(n-64), 64, 0); err != nil {
				b.Error(err)
				return
			}
			i += 64
		}
	})
	b.ReportMetric(float64(b.N*64)/b.Elapsed().Seconds(), "entries/s")
}
