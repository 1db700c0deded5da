package archive

import (
	"errors"
	"fmt"
	"io"
)

// ExactReader returns a reader that yields exactly the size bytes of r, or an error.
//
// If r ends before size bytes, the Read that meets the end fails with ErrSizeMismatch
// (never io.EOF). If r holds more than size bytes, the Read that delivers the last
// announced byte fails with ErrSizeMismatch instead, before the consumer has seen a
// complete body: a backend streaming it into an HTTP request with Content-Length size
// therefore aborts the request rather than committing a truncated object. After the
// size bytes it returns io.EOF.
func ExactReader(r io.Reader, size int64) io.Reader {
	return &exactReader{r: r, size: size, left: size}
}

type exactReader struct {
	r          io.Reader
	size, left int64
	err        error // sticky
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		e.err = e.checkEnd()
		if e.err == nil {
			e.err = io.EOF
		}
		return 0, e.err
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case e.left == 0:
		// Verify the end now, in the call that completes the body.
		if cerr := e.checkEnd(); cerr != nil {
			e.err = cerr
			return 0, cerr
		}
		e.err = io.EOF
		return n, nil
	case errors.Is(err, io.EOF):
		// Not wrapping io.ErrUnexpectedEOF: HTTP clients take that for a dropped connection.
		e.err = fmt.Errorf("%w: reader ended after %d of %d bytes", ErrSizeMismatch, e.size-e.left, e.size)
		return n, e.err
	case err != nil:
		e.err = err
		return n, err
	}
	return n, nil
}

// checkEnd reports whether r is exhausted, as it must be after size bytes.
func (e *exactReader) checkEnd() error {
	var one [1]byte
	n, err := io.ReadFull(e.r, one[:])
	switch {
	case n > 0:
		return fmt.Errorf("%w: reader holds more than %d bytes", ErrSizeMismatch, e.size)
	case errors.Is(err, io.EOF):
		return nil
	default:
		return err
	}
}

// CheckedBody wraps the body of a download of size bytes: its reads fail with
// ErrSizeMismatch (wrapped by wrap, which adds the key and location) when the body ends
// early or runs long, so a truncated transfer never looks like a complete object.
func CheckedBody(rc io.ReadCloser, size int64, wrap func(error) error) io.ReadCloser {
	return &checkedBody{exact: exactReader{r: rc, size: size, left: size}, c: rc, wrap: wrap}
}

type checkedBody struct {
	exact   exactReader
	c       io.Closer
	wrap    func(error) error
	wrapped error
}

func (b *checkedBody) Read(p []byte) (int, error) {
	n, err := b.exact.Read(p)
	if err != nil && err != io.EOF {
		if b.wrapped == nil {
			b.wrapped = b.wrap(err)
		}
		return n, b.wrapped
	}
	return n, err
}

func (b *checkedBody) Close() error { return b.c.Close() }
