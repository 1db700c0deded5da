package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"floe/internal/certs"
)

// caName is the file name (ca.crt, ca.key) of the CA in a floe certs directory; no
// node or client may take it.
const caName = "ca"

// certsCmd is floe certs: a CA and certificates for nodes and clients, written into
// one directory, for dev, tests and the compose stack. Operators with their own PKI
// give the TLS flags their own files instead.
func certsCmd() *cobra.Command {
	var o certsOptions
	c := &cobra.Command{
		Use:   "certs --dir DIR --node NAME=HOST[,HOST...] [--node ...] [--client NAME ...]",
		Short: "Make a CA and node and client certificates for floe's TLS (dev, tests, compose)",
		Long: `certs writes into --dir a CA (ca.crt, ca.key) and, for each --node and --client,
NAME.crt and NAME.key, signed by that CA (ECDSA P-256, PEM; keys 0600, certificates 0644).

A node certificate is for both ends of a connection (server and client usage), valid for
exactly the hosts listed, IP addresses and DNS names: list every name and address peers
and clients reach the node at, loopback included for a cluster on one machine
(NAME=127.0.0.1,localhost). A client certificate has client usage only and no hosts.

If --dir holds ca.crt and ca.key already they are used, so a node added later is
trusted by the rest; the CA is never replaced. Existing NAME.crt/.key are not replaced
without --force; then nothing at all is written. The files map to the TLS flags:

  every node   --cluster-tls-ca ca.crt  --cluster-tls-cert NAME.crt  --cluster-tls-key NAME.key
               --tls-cert NAME.crt  --tls-key NAME.key  [--tls-client-ca ca.crt]
  clients      trust ca.crt; present a --client pair if the nodes set --tls-client-ca

ca.key is the secret: whoever holds it can make certificates the cluster trusts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCerts(cmd.OutOrStdout(), o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.dir, "dir", "", "directory of the CA and the certificates (created 0700 if missing; required)")
	f.StringArrayVar(&o.nodes, "node", nil, "a node certificate NAME=HOST[,HOST...]: client and server usage, valid for the hosts listed (repeatable)")
	f.StringArrayVar(&o.clients, "client", nil, "a client certificate NAME: client usage only, for nodes that set --tls-client-ca (repeatable)")
	f.DurationVar(&o.validFor, "valid-for", 8760*time.Hour, "validity of the node and client certificates (cut to the CA's)")
	f.DurationVar(&o.caValidFor, "ca-valid-for", 87600*time.Hour, "validity of the CA when one is made")
	f.BoolVar(&o.force, "force", false, "replace existing NAME.crt and NAME.key (never the CA)")
	return c
}

type certsOptions struct {
	dir                  string
	nodes, clients       []string
	validFor, caValidFor time.Duration
	force                bool
}

// certSpec is one certificate floe certs is asked for.
type certSpec struct {
	flag  string // "--node" or "--client", for messages
	name  string
	hosts []string
}

func (s certSpec) node() bool { return s.flag == "--node" }

// certNameRE is what a NAME may be: a plain file name, not hidden.
var certNameRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$`)

// parseCertSpecs checks the --node and --client values, all of them before anything
// is made.
func parseCertSpecs(nodes, clients []string) ([]certSpec, error) {
	var specs []certSpec
	seen := map[string]bool{}
	add := func(s certSpec, arg string) error {
		switch {
		case !certNameRE.MatchString(s.name):
			return fmt.Errorf("%s %q: name %q: want 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'", s.flag, arg, s.name)
		case strings.EqualFold(s.name, caName):
			return fmt.Errorf("%s %q: the name %q is the CA's (%s.crt, %s.key)", s.flag, arg, s.name, caName, caName)
		case seen[strings.ToLower(s.name)]:
			return fmt.Errorf("%s %q: the name %q is given twice", s.flag, arg, s.name)
		}
		seen[strings.ToLower(s.name)] = true
		specs = append(specs, s)
		return nil
	}
	for _, arg := range nodes {
		name, list, ok := strings.Cut(arg, "=")
		if !ok || list == "" {
			return nil, fmt.Errorf("--node %q: want NAME=HOST[,HOST...], the names and addresses the node is reached at (e.g. %s=127.0.0.1,localhost)", arg, name)
		}
		hosts := strings.Split(list, ",")
		for _, h := range hosts {
			if h == "" {
				return nil, fmt.Errorf("--node %q: an empty host in the list", arg)
			}
		}
		if err := add(certSpec{flag: "--node", name: name, hosts: hosts}, arg); err != nil {
			return nil, err
		}
	}
	for _, arg := range clients {
		if err := add(certSpec{flag: "--client", name: arg}, arg); err != nil {
			return nil, err
		}
	}
	return specs, nil
}

func runCerts(w io.Writer, o certsOptions) error {
	if o.dir == "" {
		return errors.New("--dir is required")
	}
	if o.validFor <= 0 || o.caValidFor <= 0 {
		return fmt.Errorf("--valid-for %v, --ca-valid-for %v: want more than 0", o.validFor, o.caValidFor)
	}
	specs, err := parseCertSpecs(o.nodes, o.clients)
	if err != nil {
		return err
	}

	// Everything is checked and made in memory before the first file is written.
	caCrt, caKey := certs.CertPath(o.dir, caName), certs.KeyPath(o.dir, caName)
	haveCrt, err := fileExists(caCrt)
	if err != nil {
		return err
	}
	haveKey, err := fileExists(caKey)
	if err != nil {
		return err
	}
	if haveCrt != haveKey {
		have, missing := caCrt, caKey
		if haveKey {
			have, missing = caKey, caCrt
		}
		return fmt.Errorf("%s exists but %s does not: restore it, or move %s away to make a new CA (nothing the old one issued would be trusted then); nothing written", have, missing, have)
	}
	if !o.force {
		var existing []string
		for _, s := range specs {
			for _, p := range []string{certs.CertPath(o.dir, s.name), certs.KeyPath(o.dir, s.name)} {
				ok, err := fileExists(p)
				if err != nil {
					return err
				}
				if ok {
					existing = append(existing, p)
				}
			}
		}
		if len(existing) > 0 {
			return fmt.Errorf("%s already exist: nothing written; --force replaces them (the CA is kept)", strings.Join(existing, ", "))
		}
	}

	var ca *certs.CA
	var caKeyPEM []byte
	if haveCrt {
		if ca, err = certs.LoadCA(caCrt, caKey); err != nil {
			return err
		}
	} else {
		if ca, err = certs.NewCA("floe cluster CA", o.caValidFor); err != nil {
			return err
		}
		if caKeyPEM, err = ca.KeyPEM(); err != nil {
			return err
		}
	}
	type issued struct {
		spec            certSpec
		certPEM, keyPEM []byte
	}
	var out []issued
	for _, s := range specs {
		certPEM, keyPEM, err := ca.Issue(certs.Request{
			CommonName: s.name,
			Hosts:      s.hosts,
			ValidFor:   o.validFor,
			Client:     true,
			Server:     s.node(),
		})
		if err != nil {
			return fmt.Errorf("%s %s: %w", s.flag, s.name, err)
		}
		out = append(out, issued{s, certPEM, keyPEM})
	}

	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return err
	}
	caDesc := fmt.Sprintf("CA %q, valid until %s", ca.Certificate().Subject.CommonName, day(ca.Certificate().NotAfter))
	if haveCrt {
		fmt.Fprintf(w, "using %s: %s\n", caCrt, caDesc)
	} else {
		if err := certs.WritePair(o.dir, caName, ca.CertPEM(), caKeyPEM); err != nil {
			return err
		}
		fmt.Fprintf(w, "wrote %s: %s\n", caCrt, caDesc)
		fmt.Fprintf(w, "wrote %s: the CA's private key\n", caKey)
	}
	for _, is := range out {
		if err := certs.WritePair(o.dir, is.spec.name, is.certPEM, is.keyPEM); err != nil {
			return err
		}
		what := "client " + is.spec.name + ", client usage"
		if is.spec.node() {
			what = fmt.Sprintf("node %s, server and client usage, hosts %s", is.spec.name, strings.Join(is.spec.hosts, " "))
		}
		fmt.Fprintf(w, "wrote %s: %s, valid until %s\n", certs.CertPath(o.dir, is.spec.name), what, notAfter(is.certPEM))
		fmt.Fprintf(w, "wrote %s: the private key of %s\n", certs.KeyPath(o.dir, is.spec.name), is.spec.name)
	}
	fmt.Fprintf(w, "keep %s secret: whoever holds it can make certificates the cluster trusts. Nodes need only %s; floe certs needs %s again to add one.\n",
		caKey, caCrt, caKey)
	return nil
}

// fileExists reports whether path names something; an error other than "does not
// exist" (permission denied) is returned, not taken for absence.
func fileExists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// notAfter returns the end of validity of a certificate just issued (cut to the CA's
// own), as a day.
func notAfter(certPEM []byte) string {
	b, _ := pem.Decode(certPEM)
	if b == nil {
		return "?"
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return "?"
	}
	return day(c.NotAfter)
}
