package logstore

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// pebbleLogger routes Pebble's printf-style logging to slog. Pebble logs every flush,
// compaction and file creation through Infof; those go to debug level so a healthy
// node logs nothing. Errorf goes to error level.
type pebbleLogger struct {
	log *slog.Logger
}

var _ pebble.Logger = pebbleLogger{}

func (p pebbleLogger) logf(level slog.Level, format string, args ...any) {
	if !p.log.Enabled(context.Background(), level) {
		return
	}
	p.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
}

// Infof logs at debug level.
func (p pebbleLogger) Infof(format string, args ...any) { p.logf(slog.LevelDebug, format, args...) }

// Errorf logs at error level.
func (p pebbleLogger) Errorf(format string, args ...any) { p.logf(slog.LevelError, format, args...) }

// Fatalf logs at error level and panics. Pebble calls it when it cannot go on (a
// failed WAL fsync, a failed MANIFEST write, corruption) and expects it not to
// return. Pebble's default exits the process; a panic also stops the node but keeps
// the stack and lets deferred cleanup run.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.log.Error("pebble: fatal", "error", msg)
	panic("logstore: pebble fatal error: " + msg)
}

// stallWarnEvery limits write-stall warnings to one per period.
const stallWarnEvery = 30 * time.Second

// eventListener logs Pebble's routine events at debug level and the ones an operator
// needs to see (background errors, corruption, slow disk, write stalls, low disk
// space) at warn or error level. Write-stall warnings are rate-limited.
func eventListener(log *slog.Logger, l pebbleLogger) *pebble.EventListener {
	el := pebble.MakeLoggingEventListener(l)
	el.BackgroundError = func(err error) {
		log.Error("pebble: background error", "error", err)
	}
	el.DataCorruption = func(info pebble.DataCorruptionInfo) {
		l.Fatalf("%s", info)
	}
	el.DiskSlow = func(info pebble.DiskSlowInfo) {
		log.Warn("pebble: slow disk operation", "path", info.Path, "op", info.OpType.String(),
			"bytes", info.WriteSize, "duration", info.Duration)
	}
	// Under a burst of appends Pebble stalls writes briefly whenever both memtables
	// are full and one is still flushing; that is back-pressure, not a fault. Warn
	// about the first stall in each stallWarnEvery and count the rest.
	var lastWarn atomic.Int64 // unix nanoseconds
	var stalls atomic.Int64
	el.WriteStallBegin = func(info pebble.WriteStallBeginInfo) {
		n := stalls.Add(1)
		now := time.Now().UnixNano()
		last := lastWarn.Load()
		if (last == 0 || now-last >= int64(stallWarnEvery)) && lastWarn.CompareAndSwap(last, now) {
			stalls.Store(0)
			log.Warn("pebble: write stall", "reason", info.Reason, "stalls_since_last_warning", n)
			return
		}
		log.Debug("pebble: write stall", "reason", info.Reason)
	}
	el.WriteStallEnd = func() {
		log.Debug("pebble: write stall ended")
	}
	el.LowDiskSpace = func(info pebble.LowDiskSpaceInfo) {
		log.Warn("pebble: low disk space", "info", info.String())
	}
	return &el
}
