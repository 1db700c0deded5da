package seekable

import (
	"context"
	"fmt"
	"io"
)

// BytesSource is a Source over an object held in memory.
type BytesSource []byte

var _ Source = BytesSource(nil)

// ReadAt copies the object bytes at off into p; it returns io.EOF if
// fewer than len(p) bytes are left.
func (b BytesSource) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at negative offset %d", off)
	}
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Size returns len(b).
func (b BytesSource) Size() int64 { return int64(len(b)) }

// ReaderAtSource is a Source over an io.ReaderAt of known size, such as
// an *os.File; it ignores the context.
type ReaderAtSource struct {
	R io.ReaderAt
	N int64
}

var _ Source = ReaderAtSource{}

// ReadAt reads from R.
func (s ReaderAtSource) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	return s.R.ReadAt(p, off)
}

// Size returns N.
func (s ReaderAtSource) Size() int64 { return s.N }
