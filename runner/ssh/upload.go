package ssh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// UploadOptions tune Upload.
type UploadOptions struct {
	Backup       bool   // copy an existing file to path+BackupSuffix (cp -p) before replacing it
	BackupSuffix string // default ".canary-backup"
}

// UploadResult says what Upload did; pass it to Restore to undo it.
type UploadResult struct {
	Existed    bool   // path existed before the upload
	BackupPath string // where the previous file was copied ("" when no backup was taken); same form as path
	SHA256     string // hex SHA-256 of the uploaded content, verified remotely when sha256sum exists
}

// Upload writes content to path on the host atomically: the content is
// streamed over the session's stdin into a temporary file in the same
// directory, its size (and SHA-256, when sha256sum exists) is checked, it is
// fsynced where sync(1) can, the existing file is copied to
// path+BackupSuffix (cp -p) when opts.Backup is set and it exists, then the
// temporary file gets mode and is renamed over path. A "~/" prefix is
// expanded remotely ($HOME); relative paths are relative to the login
// directory. Mode 0 means 0644. The directory must exist. If path is a
// symlink, the link is replaced by a regular file.
func (c *Client) Upload(ctx context.Context, path string, content []byte, mode os.FileMode,
	opts UploadOptions) (*UploadResult, error) {
	p, err := remotePath(path)
	if err != nil {
		return nil, err
	}
	suffix := opts.BackupSuffix
	if suffix == "" {
		suffix = DefaultBackupSuffix
	}
	if strings.ContainsAny(suffix, "/\x00") {
		return nil, fmt.Errorf("ssh: upload %s: backup suffix %q must not contain '/'", path, suffix)
	}
	if mode == 0 {
		mode = 0o644
	}
	sum := sha256.Sum256(content)
	hexSum := hex.EncodeToString(sum[:])
	backup := "0"
	if opts.Backup {
		backup = "1"
	}
	script := strings.Join([]string{
		`set -eu`,
		`p=` + p,
		`want_size=` + fmt.Sprint(len(content)),
		`want_sum=` + hexSum,
		`backup=` + backup,
		`bk="$p"` + Quote(suffix),
		`case "$p" in */*) d=${p%/*}; [ -n "$d" ] || d=/ ;; *) d=. ;; esac`,
		`b=${p##*/}`,
		`if [ ! -d "$d" ]; then echo "directory $d does not exist" >&2; exit 2; fi`,
		`if [ -d "$p" ]; then echo "$p is a directory" >&2; exit 2; fi`,
		`t=$(mktemp "$d/.$b.canary-XXXXXX")`,
		`trap 'rm -f -- "$t"' EXIT`,
		`cat >"$t"`,
		`got=$(wc -c <"$t" | tr -d ' ')`,
		`if [ "$got" != "$want_size" ]; then echo "received $got of $want_size bytes" >&2; exit 3; fi`,
		`if command -v sha256sum >/dev/null 2>&1; then`,
		`  s=$(sha256sum <"$t"); s=${s%% *}`,
		`  if [ "$s" != "$want_sum" ]; then echo "SHA-256 mismatch: got $s" >&2; exit 3; fi`,
		`fi`,
		`sync -- "$t" 2>/dev/null || :`,
		`chmod ` + fmt.Sprintf("%04o", unixMode(mode)) + ` "$t"`,
		`existed=0`,
		`if [ -e "$p" ] || [ -L "$p" ]; then existed=1; fi`,
		`if [ "$backup" = 1 ] && [ "$existed" = 1 ]; then cp -p -- "$p" "$bk"; sync -- "$bk" 2>/dev/null || :; fi`,
		`mv -f -- "$t" "$p"`,
		`trap - EXIT`,
		`sync -- "$d" 2>/dev/null || :`,
		`echo "existed=$existed"`,
	}, "\n")
	res, err := c.run(ctx, script, "upload "+path, RunOptions{Stdin: bytes.NewReader(content), MaxOutput: 8 << 10}, false)
	if err != nil {
		return nil, fmt.Errorf("ssh: upload %s to %s: %w", path, c.addr, err)
	}
	if res.ExitStatus != 0 {
		return nil, fmt.Errorf("ssh: upload %s to %s failed (exit status %d): %s", path, c.addr, res.ExitStatus,
			strings.TrimSpace(res.Stderr))
	}
	out := &UploadResult{SHA256: hexSum}
	switch strings.TrimSpace(res.Stdout) {
	case "existed=1":
		out.Existed = true
		if opts.Backup {
			out.BackupPath = path + suffix
		}
	case "existed=0":
	default:
		return nil, fmt.Errorf("ssh: upload %s to %s: unexpected output %q", path, c.addr, res.Stdout)
	}
	return out, nil
}

// Restore undoes an Upload: it puts the backup back (atomically, keeping the
// backup file) or removes the file if it did not exist before. Restore is
// idempotent. It fails if the file existed but no backup was taken.
func (c *Client) Restore(ctx context.Context, path string, res *UploadResult) error {
	if res == nil {
		return errors.New("ssh: Restore: nil UploadResult")
	}
	p, err := remotePath(path)
	if err != nil {
		return err
	}
	var script string
	switch {
	case !res.Existed:
		script = "set -eu\np=" + p + "\nif [ -d \"$p\" ] && [ ! -L \"$p\" ]; then echo \"$p is a directory\" >&2; exit 2; fi\n" +
			"rm -f -- \"$p\""
	case res.BackupPath == "":
		return fmt.Errorf("ssh: cannot restore %s on %s: it existed before the upload but no backup was taken "+
			"(set UploadOptions.Backup)", path, c.addr)
	default:
		bk, err := remotePath(res.BackupPath)
		if err != nil {
			return err
		}
		script = strings.Join([]string{
			`set -eu`,
			`p=` + p,
			`bk=` + bk,
			`if [ ! -f "$bk" ]; then echo "backup $bk is missing" >&2; exit 2; fi`,
			`case "$p" in */*) d=${p%/*}; [ -n "$d" ] || d=/ ;; *) d=. ;; esac`,
			`b=${p##*/}`,
			`t=$(mktemp "$d/.$b.canary-XXXXXX")`,
			`trap 'rm -f -- "$t"' EXIT`,
			`cp -p -- "$bk" "$t"`,
			`sync -- "$t" 2>/dev/null || :`,
			`mv -f -- "$t" "$p"`,
			`trap - EXIT`,
		}, "\n")
	}
	r, err := c.run(ctx, script, "restore "+path, RunOptions{MaxOutput: 8 << 10}, false)
	if err != nil {
		return fmt.Errorf("ssh: restore %s on %s: %w", path, c.addr, err)
	}
	if r.ExitStatus != 0 {
		return fmt.Errorf("ssh: restore %s on %s failed (exit status %d): %s", path, c.addr, r.ExitStatus,
			strings.TrimSpace(r.Stderr))
	}
	return nil
}

// remotePath returns a shell expression for path, expanding a "~/" prefix
// with $HOME on the remote side.
func remotePath(path string) (string, error) {
	switch {
	case path == "":
		return "", errors.New("ssh: empty remote path")
	case strings.ContainsRune(path, 0):
		return "", fmt.Errorf("ssh: remote path %q contains a NUL byte", path)
	case strings.HasSuffix(path, "/") || path == "~" || path == "." || path == "..":
		return "", fmt.Errorf("ssh: remote path %q names a directory, not a file", path)
	case strings.HasPrefix(path, "~/"):
		return `"$HOME"/` + Quote(strings.TrimPrefix(path, "~/")), nil
	case strings.HasPrefix(path, "~"):
		return "", fmt.Errorf("ssh: remote path %q: only a ~/ prefix is expanded", path)
	}
	return Quote(path), nil
}

func unixMode(m os.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}
