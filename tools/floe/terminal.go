package main

import (
	"os"

	"golang.org/x/term"
)

// stdoutTerminal reports whether stdout is a terminal, and its width in columns (0
// when it is not one or does not say).
func stdoutTerminal() (tty bool, width int) {
	fd := int(os.Stdout.Fd())
	if !term.IsTerminal(fd) {
		return false, 0
	}
	if w, _, err := term.GetSize(fd); err == nil && w > 0 {
		width = w
	}
	return true, width
}

// colourAllowed reports whether the environment lets a terminal's output be coloured:
// NO_COLOR (https://no-color.org) unset or empty, and TERM not dumb.
func colourAllowed() bool {
	return os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}
