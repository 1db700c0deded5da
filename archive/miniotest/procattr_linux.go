package miniotest

import "syscall"

// procAttr makes the kernel kill MinIO when the thread that started it exits (see run).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
