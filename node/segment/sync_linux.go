package segment

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// datasync flushes the data of f and the metadata needed to read it back
// (its size), but not its timestamps: fdatasync(2).
func datasync(f *os.File) error {
	return onFD(f, "fdatasync", func(fd int) error {
		for {
			if err := syscall.Fdatasync(fd); err != syscall.EINTR {
				return err
			}
		}
	})
}

// dropCache drops n bytes of f from off out of the page cache: fadvise(2)
// POSIX_FADV_DONTNEED, which drops clean pages (and starts writing back dirty
// ones, which it leaves).
func dropCache(f *os.File, off, n int64) error {
	return onFD(f, "fadvise", func(fd int) error {
		return unix.Fadvise(fd, off, n, unix.FADV_DONTNEED)
	})
}

// onFD runs call on f's descriptor, which stays open meanwhile, and reports its
// error as an *os.PathError of op.
func onFD(f *os.File, op string, call func(fd int) error) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	if err := sc.Control(func(fd uintptr) { cerr = call(int(fd)) }); err != nil {
		return err
	}
	if cerr != nil {
		return &os.PathError{Op: op, Path: f.Name(), Err: cerr}
	}
	return nil
}
