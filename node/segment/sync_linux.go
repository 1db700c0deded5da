package segment

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// datasync flushes the data of f and the metadata needed to read it back
// (its size), but not its timestamps: fdatasync(2).
func datasync(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = sc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// dropCache drops n bytes of f from off out of the page cache: fadvise(2)
// POSIX_FADV_DONTNEED, which drops clean pages (and starts writing back dirty
// ones, which it leaves).
func dropCache(f *os.File, off, n int64) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = sc.Control(func(fd uintptr) {
		ferr = unix.Fadvise(int(fd), off, n, unix.FADV_DONTNEED)
	})
	if err != nil {
		return err
	}
	if ferr != nil {
		return &os.PathError{Op: "fadvise", Path: f.Name(), Err: ferr}
	}
	return nil
}
