package logstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

// openStore opens a Store in a fresh directory and closes it when the test ends.
func openStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// testLogger logs at warn level and above to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// entry returns a deterministic entry at index i with term: every field is set, and
// varies with i, so a read that returns the wrong entry is caught.
func entry(i, term uint64) *raft.Log {
	l := &raft.Log{
		Index:      i,
		Term:       term,
		Type:       raft.LogType(i % 6),
		Data:       fmt.Appendf(nil, "data-%d-term-%d", i, term),
		Extensions: fmt.Appendf(nil, "ext-%d", i%7),
		AppendedAt: time.Unix(1_700_000_000+int64(i), int64(i%1_000_000_000)),
	}
	if i%5 == 0 {
		l.Extensions = nil
	}
	if i%11 == 0 {
		l.AppendedAt = time.Time{}
	}
	return l
}

func entries(from, to, term uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, entry(i, term))
	}
	return out
}

// logsEqual compares every field; AppendedAt by instant (location and monotonic
// reading are not stored).
func logsEqual(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && (a.Data == nil) == (b.Data == nil) &&
		bytes.Equal(a.Extensions, b.Extensions) && (a.Extensions == nil) == (b.Extensions == nil) &&
		a.AppendedAt.Equal(b.AppendedAt) && a.AppendedAt.IsZero() == b.AppendedAt.IsZero()
}

func fmtLog(l *raft.Log) string {
	return fmt.Sprintf("{Index:%d Term:%d Type:%v Data:%q(nil=%t) Extensions:%q(nil=%t) AppendedAt:%v}",
		l.Index, l.Term, l.Type, l.Data, l.Data == nil, l.Extensions, l.Extensions == nil, l.AppendedAt)
}

// model is the expected content of the log, kept beside the Store.
type model map[uint64]*raft.Log

// logOp is one step of a contract case: it changes the Store and the model alike.
type logOp struct {
	name  string
	apply func(t *testing.T, s *Store, m model)
}

func storeLogs(from, to, term uint64) logOp {
	return logOp{fmt.Sprintf("StoreLogs(%d..%d, term %d)", from, to, term), func(t *testing.T, s *Store, m model) {
		logs := entries(from, to, term)
		if err := s.StoreLogs(logs); err != nil {
			t.Fatalf("StoreLogs(%d..%d): %v", from, to, err)
		}
		for _, l := range logs {
			m[l.Index] = l
		}
	}}
}

func storeLog(i, term uint64) logOp {
	return logOp{fmt.Sprintf("StoreLog(%d, term %d)", i, term), func(t *testing.T, s *Store, m model) {
		l := entry(i, term)
		if err := s.StoreLog(l); err != nil {
			t.Fatalf("StoreLog(%d): %v", i, err)
		}
		m[i] = l
	}}
}

func deleteRange(min, max uint64) logOp {
	return logOp{fmt.Sprintf("DeleteRange(%d, %d)", min, max), func(t *testing.T, s *Store, m model) {
		if err := s.DeleteRange(min, max); err != nil {
			t.Fatalf("DeleteRange(%d, %d): %v", min, max, err)
		}
		for i := range m {
			if i >= min && i <= max {
				delete(m, i)
			}
		}
	}}
}

// checkLog checks the Store against the model: bounds, every entry in it, and
// ErrLogNotFound (by identity) for each index in missing.
func checkLog(t *testing.T, s *Store, m model, missing []uint64) {
	t.Helper()
	var wantFirst, wantLast uint64
	for i := range m {
		if wantFirst == 0 || i < wantFirst {
			wantFirst = i
		}
		wantLast = max(wantLast, i)
	}
	if got, err := s.FirstIndex(); err != nil || got != wantFirst {
		t.Errorf("FirstIndex() = %d, %v; want %d, nil", got, err, wantFirst)
	}
	if got, err := s.LastIndex(); err != nil || got != wantLast {
		t.Errorf("LastIndex() = %d, %v; want %d, nil", got, err, wantLast)
	}
	for i, want := range m {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Errorf("GetLog(%d): %v", i, err)
			continue
		}
		if !logsEqual(&got, want) {
			t.Errorf("GetLog(%d) = %s, want %s", i, fmtLog(&got), fmtLog(want))
		}
	}
	for _, i := range missing {
		if _, ok := m[i]; ok {
			t.Fatalf("bad test: index %d is both present and missing", i)
		}
		got := raft.Log{Index: 12345, Data: []byte("untouched")}
		if err := s.GetLog(i, &got); err != raft.ErrLogNotFound {
			t.Errorf("GetLog(%d) = %v, want raft.ErrLogNotFound itself", i, err)
		}
	}
}

// TestLogStoreContract runs the raft.LogStore contract as named cases, each a
// sequence of operations mirrored in a model of the log.
func TestLogStoreContract(t *testing.T) {
	const maxIdx = math.MaxUint64
	cases := []struct {
		name                string
		ops                 []logOp
		wantFirst, wantLast uint64
		missing             []uint64
	}{
		{
			name:    "empty store",
			missing: []uint64{0, 1, 2, maxIdx},
		},
		{
			name:      "StoreLog one entry",
			ops:       []logOp{storeLog(1, 1)},
			wantFirst: 1, wantLast: 1,
			missing: []uint64{0, 2},
		},
		{
			name:      "StoreLogs one batch",
			ops:       []logOp{storeLogs(1, 100, 1)},
			wantFirst: 1, wantLast: 100,
			missing: []uint64{0, 101},
		},
		{
			name:      "appends in several calls",
			ops:       []logOp{storeLogs(1, 10, 1), storeLog(11, 1), storeLogs(12, 300, 2)},
			wantFirst: 1, wantLast: 300,
			missing: []uint64{301},
		},
		{
			name:      "indexes order numerically across byte boundaries",
			ops:       []logOp{storeLogs(250, 260, 1), storeLogs(65530, 65540, 1), storeLog(1<<32, 1)},
			wantFirst: 250, wantLast: 1 << 32,
			missing: []uint64{249, 261, 65529, 65541, 1<<32 - 1},
		},
		{
			name:      "DeleteRange at the head (compaction)",
			ops:       []logOp{storeLogs(1, 100, 1), deleteRange(1, 40)},
			wantFirst: 41, wantLast: 100,
			missing: []uint64{1, 20, 40},
		},
		{
			name:      "repeated compactions, the last from below the first index",
			ops:       []logOp{storeLogs(1, 100, 1), deleteRange(1, 10), deleteRange(11, 30), deleteRange(1, 60)},
			wantFirst: 61, wantLast: 100,
			missing: []uint64{1, 11, 30, 60},
		},
		{
			name:      "compaction, then appends",
			ops:       []logOp{storeLogs(1, 100, 1), deleteRange(1, 90), storeLogs(101, 120, 1)},
			wantFirst: 91, wantLast: 120,
			missing: []uint64{90},
		},
		{
			name:      "DeleteRange at the tail (conflict truncation)",
			ops:       []logOp{storeLogs(1, 100, 1), deleteRange(61, 100)},
			wantFirst: 1, wantLast: 60,
			missing: []uint64{61, 100},
		},
		{
			name:      "truncate the tail, then re-append with a new term",
			ops:       []logOp{storeLogs(1, 100, 1), deleteRange(61, 100), storeLogs(61, 80, 2)},
			wantFirst: 1, wantLast: 80,
			missing: []uint64{81, 100},
		},
		{
			name:      "compact head and truncate tail, then re-append",
			ops:       []logOp{storeLogs(1, 100, 1), deleteRange(1, 50), deleteRange(71, 100), storeLogs(71, 75, 3)},
			wantFirst: 51, wantLast: 75,
			missing: []uint64{50, 76},
		},
		{
			name:    "delete every entry",
			ops:     []logOp{storeLogs(1, 100, 1), deleteRange(1, 100)},
			missing: []uint64{1, 50, 100},
		},
		{
			name:    "DeleteRange wider than the log",
			ops:     []logOp{storeLogs(10, 20, 1), deleteRange(0, maxIdx)},
			missing: []uint64{10, 20},
		},
		{
			name:      "delete every entry, then append past a gap (snapshot install)",
			ops:       []logOp{storeLogs(1, 100, 1), deleteRange(1, 100), storeLogs(501, 510, 4)},
			wantFirst: 501, wantLast: 510,
			missing: []uint64{100, 101, 500},
		},
		{
			name:      "gap between appends",
			ops:       []logOp{storeLogs(1, 10, 1), storeLogs(20, 30, 1)},
			wantFirst: 1, wantLast: 30,
			missing: []uint64{11, 15, 19},
		},
		{
			name:      "DeleteRange of one entry in the middle",
			ops:       []logOp{storeLogs(1, 10, 1), deleteRange(5, 5)},
			wantFirst: 1, wantLast: 10,
			missing: []uint64{5},
		},
		{
			name:      "DeleteRange with min > max deletes nothing",
			ops:       []logOp{storeLogs(1, 10, 1), deleteRange(8, 3)},
			wantFirst: 1, wantLast: 10,
		},
		{
			name:      "DeleteRange of absent indexes",
			ops:       []logOp{storeLogs(10, 20, 1), deleteRange(1, 9), deleteRange(21, 30)},
			wantFirst: 10, wantLast: 20,
		},
		{
			name:      "StoreLog replaces an entry at the same index",
			ops:       []logOp{storeLogs(1, 10, 1), storeLog(5, 9)},
			wantFirst: 1, wantLast: 10,
		},
		{
			name:      "the largest index",
			ops:       []logOp{storeLog(maxIdx-1, 1), storeLog(maxIdx, 1)},
			wantFirst: maxIdx - 1, wantLast: maxIdx,
			missing: []uint64{0, maxIdx - 2},
		},
		{
			name:      "DeleteRange up to the largest index",
			ops:       []logOp{storeLogs(1, 5, 1), storeLog(maxIdx, 1), deleteRange(3, maxIdx)},
			wantFirst: 1, wantLast: 2,
			missing: []uint64{3, maxIdx},
		},
	}
	// Each case runs with the writes still in the memtable, flushed to sstables after
	// every operation (range tombstones then live in L0 beside the entries they
	// cover), and compacted after every operation.
	for _, lsm := range []string{"memtable", "flushed", "compacted"} {
		for _, tc := range cases {
			t.Run(lsm+"/"+tc.name, func(t *testing.T) {
				runContractCase(t, lsm, tc.ops, tc.wantFirst, tc.wantLast, tc.missing)
			})
		}
	}
}

func runContractCase(t *testing.T, lsm string, ops []logOp, wantFirst, wantLast uint64, missing []uint64) {
	s := openStore(t)
	m := model{}
	for _, op := range ops {
		op.apply(t, s, m)
		switch lsm {
		case "flushed":
			if err := s.db.Flush(); err != nil {
				t.Fatalf("Flush: %v", err)
			}
		case "compacted":
			if err := s.db.Compact(context.Background(), []byte{0}, []byte{0xff}, false); err != nil {
				t.Fatalf("Compact: %v", err)
			}
		}
	}
	// The explicit bounds guard the model itself.
	if got, _ := s.FirstIndex(); got != wantFirst {
		t.Errorf("after %s: FirstIndex() = %d, want %d", opNames(ops), got, wantFirst)
	}
	if got, _ := s.LastIndex(); got != wantLast {
		t.Errorf("after %s: LastIndex() = %d, want %d", opNames(ops), got, wantLast)
	}
	checkLog(t, s, m, missing)
}

func opNames(ops []logOp) string {
	if len(ops) == 0 {
		return "nothing"
	}
	var names []string
	for _, op := range ops {
		names = append(names, op.name)
	}
	return fmt.Sprint(names)
}

// TestRoundTrip stores entries with edge values in every field and reads them back.
func TestRoundTrip(t *testing.T) {
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	cases := []struct {
		name string
		log  raft.Log
	}{
		{"zero fields", raft.Log{Index: 1}},
		{"empty non-nil data and extensions", raft.Log{Index: 1, Data: []byte{}, Extensions: []byte{}}},
		{"every field", raft.Log{Index: 7, Term: 3, Type: raft.LogConfiguration, Data: []byte("cmd"),
			Extensions: []byte{0, 1, 2}, AppendedAt: time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)}},
		{"max index and term", raft.Log{Index: math.MaxUint64, Term: math.MaxUint64, Type: raft.LogBarrier}},
		{"unknown log type", raft.Log{Index: 2, Type: raft.LogType(255)}},
		{"1 MiB of data", raft.Log{Index: 3, Data: big, Extensions: big[:1000]}},
		{"binary data with zero bytes", raft.Log{Index: 4, Data: []byte{0, 0, 0xff, 0}}},
		{"time before 1970", raft.Log{Index: 5, AppendedAt: time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC)}},
		{"time just after the zero time", raft.Log{Index: 6, AppendedAt: time.Time{}.Add(time.Nanosecond)}},
		{"time far in the future", raft.Log{Index: 7, AppendedAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
		{"time with monotonic reading and local zone", raft.Log{Index: 8, AppendedAt: time.Now()}},
	}
	s := openStore(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Through the codec alone.
			enc := appendLog(nil, &tc.log)
			if len(enc) != encodedLen(&tc.log) {
				t.Errorf("encoded %d bytes, encodedLen says %d", len(enc), encodedLen(&tc.log))
			}
			var dec raft.Log
			if err := decodeLog(enc, &dec); err != nil {
				t.Fatalf("decodeLog: %v", err)
			}
			if !logsEqual(&dec, &tc.log) {
				t.Errorf("decodeLog = %s, want %s", fmtLog(&dec), fmtLog(&tc.log))
			}
			// Through the Store.
			if err := s.StoreLog(&tc.log); err != nil {
				t.Fatalf("StoreLog: %v", err)
			}
			var got raft.Log
			if err := s.GetLog(tc.log.Index, &got); err != nil {
				t.Fatalf("GetLog: %v", err)
			}
			if !logsEqual(&got, &tc.log) {
				t.Errorf("GetLog = %s, want %s", fmtLog(&got), fmtLog(&tc.log))
			}
		})
	}
}

// TestGetLogOwnsItsMemory checks that an entry read back shares no memory with
// Pebble or with another read: changing it changes nothing stored.
func TestGetLogOwnsItsMemory(t *testing.T) {
	s := openStore(t)
	want := entry(1, 1)
	if err := s.StoreLog(want); err != nil {
		t.Fatal(err)
	}
	var a raft.Log
	if err := s.GetLog(1, &a); err != nil {
		t.Fatal(err)
	}
	for i := range a.Data {
		a.Data[i] = 'x'
	}
	a.Data = append(a.Data, "more"...) // must not spill into Extensions
	if !bytes.Equal(a.Extensions, want.Extensions) {
		t.Errorf("appending to Data changed Extensions to %q, want %q", a.Extensions, want.Extensions)
	}
	var b raft.Log
	if err := s.GetLog(1, &b); err != nil {
		t.Fatal(err)
	}
	if !logsEqual(&b, want) {
		t.Errorf("after changing a read copy, GetLog = %s, want %s", fmtLog(&b), fmtLog(want))
	}
}

func TestStoreLogsRejectsInvalidEntries(t *testing.T) {
	cases := []struct {
		name string
		logs []*raft.Log
	}{
		{"nil entry", []*raft.Log{entry(1, 1), nil}},
		{"index 0", []*raft.Log{entry(1, 1), {Index: 0, Term: 1}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			if err := s.StoreLogs(tc.logs); !errors.Is(err, ErrInvalidLog) {
				t.Fatalf("StoreLogs = %v, want ErrInvalidLog", err)
			}
			checkLog(t, s, model{}, []uint64{0, 1}) // nothing of the batch was stored
		})
	}
	s := openStore(t)
	if err := s.StoreLogs(nil); err != nil {
		t.Errorf("StoreLogs(nil) = %v, want nil", err)
	}
}

// TestStableStore covers Set/Get/SetUint64/GetUint64 and missing keys.
func TestStableStore(t *testing.T) {
	type step struct {
		set    []byte // Set(key, set) if non-nil
		setU   *uint64
		want   []byte // Get(key) result when wantErr is nil
		wantU  uint64
		getU   bool // check GetUint64 instead of Get
		errIs  error
		errMsg string
	}
	u := func(v uint64) *uint64 { return &v }
	cases := []struct {
		name  string
		key   []byte
		steps []step
	}{
		{"missing key: Get", []byte("CurrentTerm"), []step{{errIs: ErrKeyNotFound, errMsg: "not found"}}},
		{"missing key: GetUint64", []byte("CurrentTerm"), []step{{getU: true, errIs: ErrKeyNotFound, errMsg: "not found"}}},
		{"Set then Get", []byte("LastVoteCand"), []step{{set: []byte("127.0.0.1:6000"), want: []byte("127.0.0.1:6000")}}},
		{"Set overwrites", []byte("k"), []step{{set: []byte("one"), want: []byte("one")}, {set: []byte("two"), want: []byte("two")}}},
		{"empty value is present and non-nil", []byte("k"), []step{{set: []byte{}, want: []byte{}}}},
		{"binary key and value", []byte{0, 0xff, 'l', 0}, []step{{set: []byte{0, 1, 0}, want: []byte{0, 1, 0}}}},
		{"empty key", []byte{}, []step{{set: []byte("v"), want: []byte("v")}}},
		{"SetUint64 then GetUint64", []byte("CurrentTerm"), []step{{setU: u(42), getU: true, wantU: 42}}},
		{"SetUint64 zero is present", []byte("CurrentTerm"), []step{{setU: u(0), getU: true, wantU: 0}}},
		{"SetUint64 max", []byte("LastVoteTerm"), []step{{setU: u(math.MaxUint64), getU: true, wantU: math.MaxUint64}}},
		{"SetUint64 overwrites", []byte("CurrentTerm"), []step{{setU: u(1), getU: true, wantU: 1}, {setU: u(2), getU: true, wantU: 2}}},
		{"GetUint64 of a non-uint64 value", []byte("k"), []step{{set: []byte("abc"), getU: true, errIs: ErrCorrupt}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			for i, st := range tc.steps {
				if st.set != nil {
					if err := s.Set(tc.key, st.set); err != nil {
						t.Fatalf("step %d: Set: %v", i, err)
					}
				}
				if st.setU != nil {
					if err := s.SetUint64(tc.key, *st.setU); err != nil {
						t.Fatalf("step %d: SetUint64: %v", i, err)
					}
				}
				var err error
				if st.getU {
					var got uint64
					got, err = s.GetUint64(tc.key)
					if err == nil && got != st.wantU {
						t.Errorf("step %d: GetUint64(%q) = %d, want %d", i, tc.key, got, st.wantU)
					}
				} else {
					var got []byte
					got, err = s.Get(tc.key)
					if err == nil && (!bytes.Equal(got, st.want) || got == nil) {
						t.Errorf("step %d: Get(%q) = %q (nil=%t), want %q", i, tc.key, got, got == nil, st.want)
					}
				}
				if !errors.Is(err, st.errIs) {
					t.Errorf("step %d: err = %v, want %v", i, err, st.errIs)
				}
				if st.errMsg != "" && (err == nil || err.Error() != st.errMsg) {
					t.Errorf("step %d: err = %v, want message exactly %q", i, err, st.errMsg)
				}
			}
			// Stable keys never show up in the log, whatever their bytes.
			checkLog(t, s, model{}, nil)
		})
	}
}

// TestNotFoundConvention checks the missing-key convention with raft's own code:
// HasExistingState reads CurrentTerm from a fresh store and must take the error as
// "no state", not as a failure.
func TestNotFoundConvention(t *testing.T) {
	s := openStore(t)
	snaps := raft.NewInmemSnapshotStore()
	has, err := raft.HasExistingState(s, s, snaps)
	if err != nil || has {
		t.Fatalf("fresh store: HasExistingState = %t, %v; want false, nil", has, err)
	}
	if _, err := s.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" || err != ErrKeyNotFound {
		t.Fatalf("GetUint64 of a missing key = %v, want ErrKeyNotFound with message %q", err, "not found")
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 1); err != nil {
		t.Fatal(err)
	}
	has, err = raft.HasExistingState(s, s, snaps)
	if err != nil || !has {
		t.Fatalf("after SetUint64(CurrentTerm, 1): HasExistingState = %t, %v; want true, nil", has, err)
	}
}

// TestReopen checks that every kind of write survives Close and Open.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	m := model{}
	for _, op := range []logOp{storeLogs(1, 500, 1), deleteRange(1, 100), deleteRange(451, 500), storeLogs(451, 460, 2)} {
		op.apply(t, s, m)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("n2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	checkLog(t, s, m, []uint64{1, 100, 461, 500})
	if got, err := s.GetUint64([]byte("CurrentTerm")); err != nil || got != 7 {
		t.Errorf("GetUint64(CurrentTerm) = %d, %v; want 7, nil", got, err)
	}
	if got, err := s.Get([]byte("LastVoteCand")); err != nil || string(got) != "n2" {
		t.Errorf("Get(LastVoteCand) = %q, %v; want n2, nil", got, err)
	}
}

// TestCrashKeepsAcknowledgedWrites simulates power loss: the file system keeps only
// what was fsynced. Every write that returned nil must be there after recovery.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s, err := Open("db", Options{Logger: testLogger(t), FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := model{}
	rng := rand.New(rand.NewPCG(1, 2))
	var next uint64 = 1
	var term uint64 = 1
	for round := range 300 {
		switch r := rng.IntN(10); {
		case r < 5: // append a batch
			n := uint64(1 + rng.IntN(20))
			storeLogs(next, next+n-1, term).apply(t, s, m)
			next += n
		case r < 7 && next > 10: // truncate the tail and move to a new term
			term++
			if err := s.SetUint64([]byte("CurrentTerm"), term); err != nil {
				t.Fatal(err)
			}
			from := next - uint64(1+rng.IntN(5))
			deleteRange(from, next-1).apply(t, s, m)
			next = from
		case r < 9 && next > 10: // compact the head
			first, _ := s.FirstIndex()
			if first > 0 && first+5 < next {
				deleteRange(first, first+uint64(rng.IntN(int(next-first-5)))).apply(t, s, m)
			}
		default: // a new term without a truncation
			term++
			if err := s.SetUint64([]byte("CurrentTerm"), term); err != nil {
				t.Fatal(err)
			}
		}
		// Crash right after the operation, so no later write's fsync covers it.
		if round%7 == 6 {
			crashAndCheck(t, fs, m, term)
		}
	}
}

// crashAndCheck opens a crash clone of fs (synced data only) and checks it against m.
func crashAndCheck(t *testing.T, fs *vfs.MemFS, m model, term uint64) {
	t.Helper()
	clone := fs.CrashClone(vfs.CrashCloneCfg{})
	s, err := Open("db", Options{Logger: testLogger(t), FS: clone})
	if err != nil {
		t.Fatalf("open after crash: %v", err)
	}
	defer s.Close()
	checkLog(t, s, m, nil)
	if got, err := s.GetUint64([]byte("CurrentTerm")); err != nil || got != term {
		t.Errorf("after crash: GetUint64(CurrentTerm) = %d, %v; want %d, nil", got, err, term)
	}
}

func TestClosed(t *testing.T) {
	s, err := Open(t.TempDir(), Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	var l raft.Log
	calls := map[string]error{
		"StoreLog":    s.StoreLog(entry(1, 1)),
		"StoreLogs":   s.StoreLogs(entries(1, 2, 1)),
		"GetLog":      s.GetLog(1, &l),
		"DeleteRange": s.DeleteRange(1, 2),
		"Set":         s.Set([]byte("k"), []byte("v")),
		"SetUint64":   s.SetUint64([]byte("k"), 1),
	}
	_, calls["FirstIndex"] = s.FirstIndex()
	_, calls["LastIndex"] = s.LastIndex()
	_, calls["Get"] = s.Get([]byte("k"))
	_, calls["GetUint64"] = s.GetUint64([]byte("k"))
	for name, err := range calls {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

// TestOpenRefusesOtherDatabases checks the format marker.
func TestOpenRefusesOtherDatabases(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Set(formatKey, []byte("floe-logstore/99"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open("db", Options{FS: fs, Logger: testLogger(t)}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open of a store with another format = %v, want ErrCorrupt", err)
	}
}

// TestConcurrentUse runs raft's access pattern under the race detector: one
// appender, a compactor trailing it, and readers of the whole log.
func TestConcurrentUse(t *testing.T) {
	s := openStore(t)
	const total = 2000
	var wg sync.WaitGroup
	done := make(chan struct{})
	errc := make(chan error, 8)

	wg.Add(1)
	go func() { // appender
		defer wg.Done()
		defer close(done)
		for i := uint64(1); i <= total; i += 10 {
			if err := s.StoreLogs(entries(i, i+9, 1)); err != nil {
				errc <- err
				return
			}
		}
	}()
	wg.Add(1)
	go func() { // compactor: keeps the last 100 entries
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			first, err1 := s.FirstIndex()
			last, err2 := s.LastIndex()
			if err := errors.Join(err1, err2); err != nil {
				errc <- err
				return
			}
			if last > first+100 {
				if err := s.DeleteRange(first, last-100); err != nil {
					errc <- err
					return
				}
			}
		}
	}()
	for range 4 {
		wg.Add(1)
		go func() { // readers: an entry is either absent or exactly right
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				last, err := s.LastIndex()
				if err != nil {
					errc <- err
					return
				}
				for i := last; i > 0 && i+200 > last; i-- {
					var l raft.Log
					err := s.GetLog(i, &l)
					if err == raft.ErrLogNotFound {
						continue
					}
					if err != nil {
						errc <- err
						return
					}
					if !logsEqual(&l, entry(i, 1)) {
						errc <- fmt.Errorf("GetLog(%d) = %s, want %s", i, fmtLog(&l), fmtLog(entry(i, 1)))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if last, _ := s.LastIndex(); last != total {
		t.Errorf("LastIndex() = %d, want %d", last, total)
	}
}

// TestQuietLogging checks that a healthy store logs nothing at info level or above:
// Pebble's routine messages go to debug.
func TestQuietLogging(t *testing.T) {
	h := &countingHandler{level: slog.LevelInfo}
	dir := t.TempDir()
	for range 2 {
		s, err := Open(dir, Options{Logger: slog.New(h)})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.StoreLogs(entries(1, 100, 1)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRange(1, 50); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.records) > 0 {
		t.Errorf("logged %d records at info or above, want none; first: %q", len(h.records), h.records[0])
	}
	if h.debug == 0 {
		t.Errorf("no debug records: Pebble's logging is not routed to slog")
	}
}

type countingHandler struct {
	level   slog.Level
	mu      sync.Mutex
	records []string
	debug   int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Level >= h.level {
		h.records = append(h.records, r.Message)
	} else {
		h.debug++
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func TestPebbleFatalPanics(t *testing.T) {
	l := pebbleLogger{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	defer func() {
		if r := recover(); r == nil {
			t.Error("Fatalf returned, want a panic")
		}
	}()
	l.Fatalf("WAL sync failed: %s", "EIO")
}

// FuzzDecodeLog feeds arbitrary bytes to the entry decoder: it must not panic, and
// whatever it accepts must encode and decode to the same entry.
func FuzzDecodeLog(f *testing.F) {
	for _, l := range []*raft.Log{{Index: 1}, entry(7, 3), entry(11, 2), {Index: 2, Data: []byte{}, Extensions: []byte{}}} {
		f.Add(appendLog(nil, l))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var l raft.Log
		if err := decodeLog(slices.Clone(b), &l); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeLog error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		var again raft.Log
		if err := decodeLog(appendLog(nil, &l), &again); err != nil {
			t.Fatalf("re-decode of %s: %v", fmtLog(&l), err)
		}
		if !logsEqual(&l, &again) {
			t.Fatalf("re-decode = %s, want %s", fmtLog(&again), fmtLog(&l))
		}
	})
}

// appendLog appends the encoding of l to dst (encodeLog into a grown slice).
func appendLog(dst []byte, l *raft.Log) []byte {
	n := encodedLen(l)
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	encodeLog(dst[start:], l)
	return dst
}
