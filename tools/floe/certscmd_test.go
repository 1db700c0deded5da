package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// certsCheck reads what floe certs wrote into dir.
type certsCheck struct {
	t   *testing.T
	dir string
}

// pool returns a pool of dir/ca.crt.
func (c certsCheck) pool() *x509.CertPool {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, "ca.crt"))
	if err != nil {
		c.t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		c.t.Fatalf("ca.crt holds no certificate:\n%s", b)
	}
	return p
}

// cert parses dir/name.crt, after checking that it and dir/name.key make a pair.
func (c certsCheck) cert(name string) *x509.Certificate {
	c.t.Helper()
	crt, key := filepath.Join(c.dir, name+".crt"), filepath.Join(c.dir, name+".key")
	if _, err := tls.LoadX509KeyPair(crt, key); err != nil {
		c.t.Fatalf("%s and %s: %v", crt, key, err)
	}
	b, _ := os.ReadFile(crt)
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		c.t.Fatal(err)
	}
	return cert
}

// verifies reports the error of verifying dir/name.crt against dir/ca.crt for host
// (none if "") and usage.
func (c certsCheck) verify(name, host string, usage x509.ExtKeyUsage) error {
	c.t.Helper()
	_, err := c.cert(name).Verify(x509.VerifyOptions{Roots: c.pool(), DNSName: host, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// mode returns the permission bits of dir/name.
func (c certsCheck) mode(name string) os.FileMode {
	c.t.Helper()
	st, err := os.Stat(filepath.Join(c.dir, name))
	if err != nil {
		c.t.Fatal(err)
	}
	return st.Mode().Perm()
}

// TestCertsGenerate: floe certs makes the directory 0700, a CA, node certificates
// that verify against ca.crt as server and client for exactly the hosts listed, and a
// client certificate that verifies as client only; keys are 0600, certificates 0644,
// and it prints one line per file and the reminder about ca.key.
func TestCertsGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	out, err := runFloe(t, "certs", "--dir", dir,
		"--node", "node1=127.0.0.1,localhost", "--node", "node2=127.0.0.1,node2.floe", "--node", "node3=::1",
		"--client", "admin")
	if err != nil {
		t.Fatalf("floe certs: %v\n%s", err, out)
	}
	c := certsCheck{t, dir}
	if got := c.mode("."); got != 0o700 {
		t.Errorf("directory mode %v, want 0700", got)
	}
	files := []string{"ca.crt", "ca.key", "node1.crt", "node1.key", "node2.crt", "node2.key", "node3.crt", "node3.key", "admin.crt", "admin.key"}
	for _, f := range files {
		want := os.FileMode(0o644)
		if strings.HasSuffix(f, ".key") {
			want = 0o600
		}
		if got := c.mode(f); got != want {
			t.Errorf("%s: mode %v, want %v", f, got, want)
		}
		if n := strings.Count(out, "wrote "+filepath.Join(dir, f)+":"); n != 1 {
			t.Errorf("%s: printed %d times, want once:\n%s", f, n, out)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != len(files) {
		t.Errorf("%d files in %s, want %d", len(entries), dir, len(files))
	}
	if !strings.Contains(out, "keep "+filepath.Join(dir, "ca.key")+" secret") {
		t.Errorf("no reminder to keep ca.key secret:\n%s", out)
	}

	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	for _, tc := range []struct {
		name      string
		good, bad []string
	}{
		{"node1", []string{"127.0.0.1", "localhost"}, []string{"::1", "node1", "127.0.0.2"}},
		{"node2", []string{"127.0.0.1", "node2.floe"}, []string{"localhost", "node2"}},
		{"node3", []string{"::1"}, []string{"127.0.0.1", "localhost"}},
	} {
		for _, host := range tc.good {
			for _, usage := range both {
				if err := c.verify(tc.name, host, usage); err != nil {
					t.Errorf("%s for %s, usage %v: %v", tc.name, host, usage, err)
				}
			}
		}
		for _, host := range tc.bad {
			if err := c.verify(tc.name, host, x509.ExtKeyUsageServerAuth); err == nil {
				t.Errorf("%s verifies for %s, which it was not given", tc.name, host)
			}
		}
		if cn := c.cert(tc.name).Subject.CommonName; cn != tc.name {
			t.Errorf("%s: common name %q", tc.name, cn)
		}
	}
	if err := c.verify("admin", "", x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("admin as a client: %v", err)
	}
	if err := c.verify("admin", "", x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("the client certificate admin verifies for server authentication")
	}
	if ca := c.cert("ca"); !ca.IsCA || ca.Subject.CommonName != "floe cluster CA" {
		t.Errorf("ca.crt: IsCA %v, subject %q; want the CA floe cluster CA", ca.IsCA, ca.Subject.CommonName)
	}
}

// TestCertsAddNode: a second run on the same directory keeps the CA (ca.crt and
// ca.key unchanged, "using" printed), so the first node still verifies against ca.crt
// and the new one does too; the existing node's files are untouched.
func TestCertsAddNode(t *testing.T) {
	dir := t.TempDir()
	if out, err := runFloe(t, "certs", "--dir", dir, "--node", "node1=127.0.0.1"); err != nil {
		t.Fatalf("floe certs: %v\n%s", err, out)
	}
	before := readFiles(t, dir, "ca.crt", "ca.key", "node1.crt", "node1.key")
	out, err := runFloe(t, "certs", "--dir", dir, "--node", "node4=127.0.0.1,localhost")
	if err != nil {
		t.Fatalf("floe certs adding node4: %v\n%s", err, out)
	}
	if !strings.Contains(out, "using "+filepath.Join(dir, "ca.crt")) || strings.Contains(out, "wrote "+filepath.Join(dir, "ca.")) {
		t.Errorf("the second run does not say it reuses the CA, or rewrites it:\n%s", out)
	}
	if after := readFiles(t, dir, "ca.crt", "ca.key", "node1.crt", "node1.key"); !equalFiles(before, after) {
		t.Error("adding node4 changed the CA or node1's files")
	}
	c := certsCheck{t, dir}
	for _, name := range []string{"node1", "node4"} {
		if err := c.verify(name, "127.0.0.1", x509.ExtKeyUsageServerAuth); err != nil {
			t.Errorf("%s against ca.crt after adding node4: %v", name, err)
		}
	}
}

// TestCertsOverwrite: a run naming an existing certificate fails, says which files
// and --force, and writes nothing, not even the certificates it could have made;
// with --force it replaces them, keeps the CA, and the new pair verifies.
func TestCertsOverwrite(t *testing.T) {
	dir := t.TempDir()
	if out, err := runFloe(t, "certs", "--dir", dir, "--node", "node1=127.0.0.1"); err != nil {
		t.Fatalf("floe certs: %v\n%s", err, out)
	}
	before := readFiles(t, dir, "ca.crt", "ca.key", "node1.crt", "node1.key")
	out, err := runFloe(t, "certs", "--dir", dir, "--node", "node5=127.0.0.1", "--node", "node1=127.0.0.1,localhost")
	if err == nil {
		t.Fatalf("floe certs over node1 succeeded:\n%s", out)
	}
	for _, want := range []string{filepath.Join(dir, "node1.crt"), filepath.Join(dir, "node1.key"), "--force", "nothing written"} {
		if !strings.Contains(out, want) {
			t.Errorf("refusal does not mention %q:\n%s", want, out)
		}
	}
	if after := readFiles(t, dir, "ca.crt", "ca.key", "node1.crt", "node1.key"); !equalFiles(before, after) {
		t.Error("the refused run changed files")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 4 {
		t.Errorf("%d files after the refused run, want 4 (node5 not written)", len(entries))
	}

	out, err = runFloe(t, "certs", "--dir", dir, "--force", "--node", "node1=127.0.0.1,localhost")
	if err != nil {
		t.Fatalf("floe certs --force: %v\n%s", err, out)
	}
	after := readFiles(t, dir, "ca.crt", "ca.key", "node1.crt", "node1.key")
	if !bytes.Equal(before["ca.crt"], after["ca.crt"]) || !bytes.Equal(before["ca.key"], after["ca.key"]) {
		t.Error("--force replaced the CA")
	}
	if bytes.Equal(before["node1.crt"], after["node1.crt"]) || bytes.Equal(before["node1.key"], after["node1.key"]) {
		t.Error("--force left node1's files as they were")
	}
	if err := (certsCheck{t, dir}).verify("node1", "localhost", x509.ExtKeyUsageServerAuth); err != nil {
		t.Errorf("node1 replaced with localhost: %v", err)
	}
}

// TestCertsBadInput: bad names, host lists and flags are refused with a message that
// names the problem, and nothing is written: not even the directory.
func TestCertsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no dir", []string{"--node", "n1=127.0.0.1"}, "--dir"},
		{"no hosts", []string{"--node", "n1"}, "NAME=HOST"},
		{"empty host list", []string{"--node", "n1="}, "NAME=HOST"},
		{"empty host", []string{"--node", "n1=127.0.0.1,"}, "empty host"},
		{"bad host", []string{"--node", "n1=node 1"}, `invalid host "node 1"`},
		{"host with port", []string{"--node", "n1=127.0.0.1:9000"}, `invalid host "127.0.0.1:9000"`},
		{"empty name", []string{"--node", "=127.0.0.1"}, `name ""`},
		{"hidden name", []string{"--node", ".n1=127.0.0.1"}, `name ".n1"`},
		{"path in name", []string{"--node", "../n1=127.0.0.1"}, `name "../n1"`},
		{"slash in client", []string{"--client", "a/b"}, `name "a/b"`},
		{"space in client", []string{"--client", "a b"}, `name "a b"`},
		{"the CA's name", []string{"--node", "ca=127.0.0.1"}, "the CA's"},
		{"the CA's name, other case", []string{"--client", "CA"}, "the CA's"},
		{"twice", []string{"--node", "n1=127.0.0.1", "--client", "n1"}, "given twice"},
		{"no validity", []string{"--node", "n1=127.0.0.1", "--valid-for", "0s"}, "--valid-for"},
		{"argument", []string{"n1"}, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs")
			args := append([]string{"certs"}, tc.args...)
			if tc.name != "no dir" {
				args = append(args, "--dir", dir)
			}
			out, err := runFloe(t, args...)
			if err == nil {
				t.Fatalf("floe %v succeeded:\n%s", args, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("floe %v: want %q in\n%s", args, tc.want, out)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("floe %v created %s (%v)", args, dir, err)
			}
		})
	}
}

func readFiles(t *testing.T, dir string, names ...string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		m[n] = b
	}
	return m
}

func equalFiles(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for n, x := range a {
		if !bytes.Equal(x, b[n]) {
			return false
		}
	}
	return true
}
