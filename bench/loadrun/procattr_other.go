//go:build !linux

package main

import "syscall"

// childAttr has nothing to add outside Linux; the servers are stopped by
// the run's cleanup.
func childAttr() *syscall.SysProcAttr { return nil }
