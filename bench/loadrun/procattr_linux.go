//go:build linux

package main

import "syscall"

// childAttr makes the kernel kill a server if this process dies without
// stopping it (a panic, SIGKILL), so no server outlives a run.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
