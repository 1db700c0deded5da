package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"floe/node/segment"
)

func walCmd() *cobra.Command {
	wal := &cobra.Command{Use: "wal", Short: "Inspect segment WAL files on disk"}
	var quiet bool
	dump := &cobra.Command{
		Use:   "dump <file.wal>...",
		Short: "List every record of a segment file with its offset, length and CRC status, going past damage",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			bad := 0
			for _, path := range args {
				n, err := dumpWAL(path, quiet)
				if err != nil {
					return err
				}
				bad += n
			}
			if bad > 0 {
				return fmt.Errorf("%d damaged record(s)", bad)
			}
			return nil
		},
	}
	dump.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only damaged records and the summary")
	wal.AddCommand(dump)
	return wal
}

func dumpWAL(path string, quiet bool) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	var records, damaged int
	var payload int64
	ierr := segment.Inspect(f, st.Size(), func(ri segment.RecordInfo) bool {
		records++
		if ri.Intact() {
			payload += int64(ri.Length)
			if !quiet {
				fmt.Printf("%s\t#%d\toffset %d\tlength %d\tcrc %08x\tok\n", path, ri.Index, ri.Offset, ri.Length, ri.StoredCRC)
			}
			return true
		}
		damaged++
		fmt.Printf("%s\t#%d\toffset %d\tlength %d\tcrc stored %08x computed %08x\tDAMAGED: %v\n",
			path, ri.Index, ri.Offset, ri.Length, ri.StoredCRC, ri.ComputedCRC, ri.Err)
		return true
	})
	if ierr != nil && !errors.Is(ierr, segment.ErrCorrupt) {
		return damaged, ierr
	}
	if ierr != nil {
		damaged++
		fmt.Printf("%s\tfile header DAMAGED: %v\n", path, ierr)
	}
	fmt.Printf("%s\t%d records, %d damaged, %d payload bytes\n", path, records, damaged, payload)
	return damaged, nil
}
