package segment

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkAppend measures acknowledged 1 KiB appends from concurrent
// goroutines, each appending a batch of records at a time (AppendBatch; 1
// = Append) and waiting for its fdatasync, as node's appender does with
// the requests queued while its previous batch was written. Appends take
// turns, one write and one fdatasync each. It reports entries/s, the mean
// entries per fdatasync, the mean time of one fdatasync, and the CPU time
// (the process's, user and system, from getrusage) of one append's write and
// fdatasync: the floor a disk sets under an acknowledged write
// (writers=1/batch=1 is one entry per fdatasync; nosync, the write alone).
func BenchmarkAppend(b *testing.B) {
	cases := []struct {
		writers int // goroutines
		batch   int // records per append
		noSync  bool
	}{
		{writers: 1, batch: 1},
		{writers: 16, batch: 1},
		{writers: 1, batch: 64},
		{writers: 1, batch: 512},
		{writers: 4, batch: 128},
		{writers: 1, batch: 64, noSync: true},
	}
	for _, c := range cases {
		name := fmt.Sprintf("writers=%d/batch=%d", c.writers, c.batch)
		if c.noSync {
			name += "/nosync"
		}
		b.Run(name, func(b *testing.B) {
			var syncs, records, took atomic.Int64
			opts := quiet()
			opts.NoSync = c.noSync
			opts.OnFlush = func(fi FlushInfo) {
				syncs.Add(1)
				records.Add(int64(fi.Records))
				took.Add(int64(fi.Sync))
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
			batch := make([][]byte, c.batch)
			for i := range batch {
				batch[i] = payload
			}
			b.SetBytes(int64(len(payload)))
			cpu0 := processCPU(b)
			b.ResetTimer()
			// b.N counts records: each goroutine appends whole batches
			// until the records are spent, the last one possibly short.
			var left atomic.Int64
			left.Store(int64(b.N))
			var wg sync.WaitGroup
			for range c.writers {
				wg.Go(func() {
					for {
						n := min(int64(c.batch), left.Add(-int64(c.batch))+int64(c.batch))
						if n <= 0 {
							return
						}
						if _, err := s.AppendBatch(batch[:n]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			if n := syncs.Load(); n > 0 {
				b.ReportMetric(float64(records.Load())/float64(n), "entries/batch")
				if !c.noSync {
					b.ReportMetric(float64(took.Load())/float64(n)/1e3, "us/fdatasync")
				}
				// The whole process's CPU (the runtime's included) over the commits.
				b.ReportMetric(float64(processCPU(b)-cpu0)/float64(n)/1e3, "cpu-us/commit")
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

// processCPU is the CPU time the process has used so far, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
