package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"floe/archive"
	"floe/archive/open"
	"floe/meta"
	"floe/tiering"
)

type archiveFlags struct {
	url      string
	endpoint string
	region   string
	sse      string
	kmsKeyID string
}

// The usage of --s3-sse and --s3-sse-kms-key-id, shared by the agent, floe archive and
// floe restore. Reads need neither; they matter where a command writes objects.
const (
	sseUsage       = "encrypt every archived object at rest: AES256 (SSE-S3) or aws:kms (SSE-KMS); empty: the bucket's default encryption (s3:// and minio:// only)"
	sseKMSKeyUsage = "KMS key id, ARN or alias for --s3-sse aws:kms (default: the bucket's default KMS key)"
)

func (f *archiveFlags) add(c *cobra.Command) {
	c.PersistentFlags().StringVar(&f.url, "archive", "", "object store URL: file:///abs/dir, s3://bucket/prefix or minio://bucket/prefix (env FLOE_ARCHIVE)")
	c.PersistentFlags().StringVar(&f.endpoint, "s3-endpoint", "", "S3 endpoint URL (env FLOE_S3_ENDPOINT)")
	c.PersistentFlags().StringVar(&f.region, "s3-region", "", "S3 region (env FLOE_S3_REGION)")
	c.PersistentFlags().StringVar(&f.sse, "s3-sse", "", sseUsage+" (env FLOE_S3_SSE)")
	c.PersistentFlags().StringVar(&f.kmsKeyID, "s3-sse-kms-key-id", "", sseKMSKeyUsage+" (env FLOE_S3_SSE_KMS_KEY_ID)")
}

func (f *archiveFlags) open(ctx context.Context, c *cobra.Command) (archive.Bucket, error) {
	if err := bindEnv(c.Flags()); err != nil {
		return nil, err
	}
	if f.url == "" {
		return nil, fmt.Errorf("--archive is required")
	}
	return open.Open(ctx, f.url, archive.Options{Endpoint: f.endpoint, Region: f.region, SSE: f.sse, SSEKMSKeyID: f.kmsKeyID})
}

// archiveCmd reads a bucket directly (no node needed): its segment objects and its
// metadata snapshots.
func archiveCmd() *cobra.Command {
	f := &archiveFlags{}
	root := &cobra.Command{Use: "archive", Short: "List and check the segment objects of a bucket, and show its metadata snapshot"}
	f.add(root)
	root.AddCommand(archiveLsCmd(f), archiveVerifyCmd(f), archiveMetaCmd(f))
	return root
}

// archiveLsCmd is floe archive ls.
func archiveLsCmd(f *archiveFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "ls [topic]",
		Short: "List segment objects (all topics; a name: each incarnation of it; name@id: one)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := context.Background()
			b, err := f.open(ctx, c)
			if err != nil {
				return err
			}
			defer b.Close()
			var only string // a topic, or all of them
			if len(args) == 1 {
				only = args[0]
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TOPIC\tSEGMENT\tTERM\tBYTES\tMODIFIED\tKEY")
			var n int
			var total int64
			err = tiering.ListTopicObjects(ctx, b, only, func(o archive.ObjectInfo) error {
				topic, seg, term, ok := tiering.ParseObjectKey(o.Key)
				if !ok {
					fmt.Fprintf(w, "?\t?\t?\t%d\t%s\t%s\n", o.Size, o.LastModified.UTC().Format(time.RFC3339), o.Key)
				} else {
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\t%s\n", topic, seg, term, o.Size, o.LastModified.UTC().Format(time.RFC3339), o.Key)
				}
				n++
				total += o.Size
				return nil
			})
			w.Flush()
			fmt.Printf("%d objects, %d bytes\n", n, total)
			return err
		},
	}
}

// archiveVerifyCmd is floe archive verify.
func archiveVerifyCmd(f *archiveFlags) *cobra.Command {
	var quiet bool
	verify := &cobra.Command{
		Use:   "verify [key|topic]...",
		Short: "Read every frame of segment objects and check every checksum (default: the whole bucket)",
		Long: `verify fetches each object, decodes every frame and checks the zstd, seek-table and
record CRCs and the segment's count and CRC against the object's metadata. It goes on
past damage and reports each damaged frame with the offsets it holds. It exits non-zero
if anything is damaged.`,
		RunE: func(c *cobra.Command, args []string) error {
			ctx := context.Background()
			b, err := f.open(ctx, c)
			if err != nil {
				return err
			}
			defer b.Close()
			var keys []string
			sizes := map[string]int64{} // of the listed objects
			if len(args) == 0 {
				args = []string{""}
			}
			for _, a := range args {
				if tiering.HasObjectSuffix(a) {
					keys = append(keys, a)
					continue
				}
				if err := tiering.ListTopicObjects(ctx, b, a, func(o archive.ObjectInfo) error {
					keys = append(keys, o.Key)
					sizes[o.Key] = o.Size
					return nil
				}); err != nil {
					return err
				}
			}
			var total, done int64
			for _, k := range keys {
				total += sizes[k]
			}
			prog := newProgress("verify")
			defer prog.done()
			bad := 0
			for i, key := range keys {
				prog.clear() // verifyObject prints its line
				if !verifyObject(ctx, b, key, quiet) {
					bad++
				}
				done += sizes[key]
				prog.update(i+1, len(keys), done, total)
			}
			fmt.Printf("%d objects checked, %d damaged\n", len(keys), bad)
			if bad > 0 {
				return fmt.Errorf("%d damaged object(s)", bad)
			}
			return nil
		},
	}
	verify.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only damaged objects")
	return verify
}

// archiveMetaCmd is floe archive meta.
func archiveMetaCmd(f *archiveFlags) *cobra.Command {
	var raw bool
	var clusterID string
	metaCmd := &cobra.Command{
		Use:   "meta",
		Short: "Show the newest metadata snapshot in the bucket (" + tiering.MetaSnapshotPrefix + "): the cluster, its members, and each topic's segments, offsets and cursor",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := context.Background()
			b, err := f.open(ctx, c)
			if err != nil {
				return err
			}
			defer b.Close()
			newest, snap, err := tiering.NewestMetaSnapshot(ctx, b, clusterID)
			if err != nil {
				return err
			}
			if raw {
				os.Stdout.Write(snap.State)
				fmt.Println()
				return nil
			}
			var st meta.State
			if err := json.Unmarshal(snap.State, &st); err != nil {
				return fmt.Errorf("%s: %w", newest, err)
			}
			fmt.Printf("%s: cluster %s, raft index %d, written %s by node %d\n", newest, snap.ClusterID, snap.RaftIndex,
				time.UnixMilli(snap.CreatedUnixMS).UTC().Format(time.RFC3339), snap.Node)
			for _, id := range slices.Sorted(maps.Keys(st.Nodes)) {
				m := st.Nodes[id]
				fmt.Printf("node %d\traft %s\tclient %s\thttp %s\n", m.ID, m.RaftAddr, m.ClientAddr, m.HTTPAddr)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TOPIC\tSEGMENTS\tARCHIVED\tEXPIRED\tSTART\tSEALED END\tCURSOR")
			for _, name := range slices.Sorted(maps.Keys(st.Topics)) {
				t := st.Topics[name]
				var archived, expired int
				for _, s := range t.Segments {
					if s.ArchiveKey != "" && s.State != meta.Expired {
						archived++
					}
					if s.State == meta.Expired {
						expired++
					}
				}
				fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", name, len(t.Segments), archived, expired, t.StartOffset(), t.SealedEnd(), t.Cursor)
			}
			return w.Flush()
		},
	}
	metaCmd.Flags().BoolVar(&raw, "json", false, "print the snapshot's state as JSON")
	metaCmd.Flags().StringVar(&clusterID, "cluster-id", "", "show this cluster's newest snapshot (needed only if the prefix holds snapshots of several clusters)")
	return metaCmd
}

func verifyObject(ctx context.Context, b archive.Bucket, key string, quiet bool) bool {
	v := tiering.VerifyObject(ctx, b, key)
	if !v.OK() {
		fmt.Printf("%s\tDAMAGED\t%s\n", key, v.Err)
		for _, r := range v.Damaged {
			fmt.Printf("  frame %d (offsets %d-%d, bytes %d+%d): %v\n", r.Frame, r.First, r.First+r.Count-1, r.Offset, r.Size, r.Err)
		}
		return false
	}
	if !quiet {
		m := v.Meta
		fmt.Printf("%s\tok\ttopic %s segment %d offsets %d-%d (%d entries) in %d frames, %d bytes\n",
			key, m.Topic, m.Segment, m.Base, m.Base+m.Count-1, m.Count, v.Frames, v.Size)
	}
	return true
}
