//go:build !unix

package gateway

import (
	"os"
	"os/exec"
)

func setProcessGroup(*exec.Cmd) {}

// terminate stops the server; without signals it is killed.
func terminate(p *os.Process) {
	if err := p.Signal(os.Interrupt); err != nil {
		_ = p.Kill()
	}
}

func kill(p *os.Process) { _ = p.Kill() }
