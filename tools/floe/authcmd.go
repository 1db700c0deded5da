package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"floe/auth"
)

const (
	// maxTokenLen is the longest token floe auth hash reads, in bytes.
	maxTokenLen = 4096
	// weakTokenLen: floe auth hash warns about a token shorter than this, in bytes.
	weakTokenLen = 16
	// tokenBytes is the randomness of a token from floe auth token.
	tokenBytes = 32
)

// authCmd makes tokens and the lines of an --auth-file (package auth).
func authCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "auth",
		Short: "Make client tokens and their --auth-file lines",
		Long: "Make client tokens and their --auth-file lines. The file holds SHA-256 digests, never tokens:\n\n" +
			"  floe auth token > ci.token     # give ci.token to the client; keep it secret\n" +
			"  floe auth hash --role write --prefix orders. < ci.token >> /etc/floe/tokens\n",
	}
	root.AddCommand(authHashCmd(), authTokenCmd())
	return root
}

// authHashCmd is floe auth hash.
func authHashCmd() *cobra.Command {
	var role, prefix string
	c := &cobra.Command{
		Use:   "hash",
		Short: "Read a token (one line) from stdin and print its --auth-file line: sha256:<hex> <role> [<prefix>]",
		Long: "Read a token from stdin, one line (the newline is not part of it), and print the --auth-file line\n" +
			"that grants it --role, on the topics whose names start with --prefix or, without one, on every topic\n" +
			"and the cluster. A token is one word of printable characters; the token itself is never printed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := auth.ParseRole(role)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			token, err := readToken(cmd.InOrStdin())
			if err != nil {
				return err
			}
			line, err := auth.Line(token, r, prefix)
			if err != nil {
				return err
			}
			if len(token) < weakTokenLen {
				fmt.Fprintf(cmd.ErrOrStderr(), "floe auth hash: warning: the token is %d bytes, under %d: it may be guessed (floe auth token makes one of %d random bytes)\n",
					len(token), weakTokenLen, tokenBytes)
			}
			fmt.Fprintln(cmd.OutOrStdout(), line)
			return nil
		},
	}
	c.Flags().StringVar(&role, "role", "read", "the token's role: read, write (implies read) or admin (implies both)")
	c.Flags().StringVar(&prefix, "prefix", "", "grant the role only on topics whose names start with this (default: every topic and the cluster)")
	return c
}

// readToken reads one token from the first line of in. The errors say what is
// wrong and never quote the input.
func readToken(in io.Reader) (string, error) {
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, maxTokenLen+2) // the token, "\r\n"
	if !sc.Scan() {
		if errors.Is(sc.Err(), bufio.ErrTooLong) {
			return "", fmt.Errorf("the token on stdin is over %d bytes", maxTokenLen)
		}
		if sc.Err() != nil {
			return "", fmt.Errorf("cannot read the token from stdin: %w", sc.Err())
		}
		return "", errors.New("no token on stdin")
	}
	token := sc.Text() // without "\n" or "\r\n"
	if token == "" {
		return "", errors.New("the token on stdin is empty")
	}
	if len(token) > maxTokenLen {
		return "", fmt.Errorf("the token on stdin is over %d bytes", maxTokenLen)
	}
	if !utf8.ValidString(token) {
		return "", errors.New("the token on stdin is not valid UTF-8 (the Walrus protocol carries UTF-8 only)")
	}
	for i, r := range token {
		if unicode.IsSpace(r) {
			return "", fmt.Errorf("the token on stdin holds whitespace at byte %d: a token is one word", i)
		}
		if !unicode.IsPrint(r) {
			return "", fmt.Errorf("the token on stdin holds a control character at byte %d", i)
		}
	}
	// From a pipe or a file, more lines mean more than one token (or a mistake):
	// refuse rather than hash the first alone. A terminal is not read further, so a
	// token typed and ended with Enter is enough.
	if !isTerminal(in) {
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) != "" {
				return "", errors.New("stdin holds more than one line: give one token")
			}
		}
		if sc.Err() != nil {
			return "", errors.New("stdin holds more than one line: give one token")
		}
	}
	return token, nil
}

// isTerminal reports whether r is a character device (a terminal), not a pipe or a file.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// authTokenCmd is floe auth token.
func authTokenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "token",
		Short: fmt.Sprintf("Print a new random token (%d bytes from crypto/rand, base64url): give it to a client, hash it into the --auth-file", tokenBytes),
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := make([]byte, tokenBytes)
			rand.Read(b) // never fails (crypto/rand: it crashes the program instead)
			fmt.Fprintln(cmd.OutOrStdout(), base64.RawURLEncoding.EncodeToString(b))
			return nil
		},
	}
}
