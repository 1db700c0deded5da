//go:build !linux

package miniotest

import "syscall"

// procAttr: without Pdeathsig, a test binary that dies abruptly may leave MinIO running.
func procAttr() *syscall.SysProcAttr { return nil }
