package gitaudit

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// searcher finds the commits that introduced a version into one Terraform module
// directory of a repository.
type searcher struct {
	g        git    // runs at the repository's top level
	prefix   string // the module directory relative to the top, "" or ending in "/"
	version  string
	resource string // the release name (without "canary_release.")
	blobs    map[string]string
}

// pathspecs are the files Terraform reads in the module directory, and only there:
// subdirectories are other modules (or nothing Terraform loads).
func (s *searcher) pathspecs() []string {
	esc := globEscape(s.prefix)
	out := make([]string, 0, len(configExts))
	for _, ext := range configExts {
		out = append(out, ":(top,glob)"+esc+"*"+ext)
	}
	return out
}

func globEscape(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// load reads the module directory as of commit ("" means the empty tree).
func (s *searcher) load(ctx context.Context, commit string) (*moduleConfig, error) {
	cfg := newModuleConfig()
	if commit == "" {
		return cfg, nil
	}
	tree := commit + ":" + strings.TrimSuffix(s.prefix, "/")
	if _, err := s.g.run(ctx, "cat-file", "-e", tree); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return cfg, nil // the directory did not exist yet
	}
	out, err := s.g.run(ctx, "ls-tree", "-z", tree)
	if err != nil {
		return nil, err
	}
	for _, entry := range strings.Split(out, "\x00") {
		meta, name, ok := strings.Cut(entry, "\t")
		if !ok || !isConfigFile(name) {
			continue
		}
		f := strings.Fields(meta)
		if len(f) != 3 || f[1] != "blob" {
			continue
		}
		content, ok := s.blobs[f[2]]
		if !ok {
			if content, err = s.g.run(ctx, "cat-file", "blob", f[2]); err != nil {
				return nil, err
			}
			s.blobs[f[2]] = content
		}
		cfg.addFile(name, content, s.version)
	}
	return cfg, nil
}

// candidate is a Candidate plus what the search learned about it.
type candidate struct {
	Candidate
	unresolved string // why the release's version source could not be followed, if so
}

// find returns, newest first, every commit reachable from head that added the version at
// a place that sets the release's version (or, when that place cannot be determined, at
// any place that plausibly sets a version).
func (s *searcher) find(ctx context.Context, head string) ([]candidate, error) {
	args := []string{"log", "-z", "--no-merges", "--no-textconv", "--format=%H%x1f%P%x1f%s", "-S" + s.version, head, "--"}
	out, err := s.g.run(ctx, append(args, s.pathspecs()...)...)
	if err != nil {
		return nil, err
	}
	var cands []candidate
	for _, rec := range strings.Split(out, "\x00") {
		rec = strings.TrimLeft(rec, "\n")
		if rec == "" {
			continue
		}
		f := strings.SplitN(rec, "\x1f", 3)
		if len(f) != 3 {
			continue
		}
		commit, parent, subject := f[0], strings.Fields(f[1]), f[2]
		newCfg, err := s.load(ctx, commit)
		if err != nil {
			return nil, err
		}
		var oldCfg *moduleConfig
		if len(parent) > 0 {
			oldCfg, err = s.load(ctx, parent[0])
		} else {
			oldCfg, err = s.load(ctx, "")
		}
		if err != nil {
			return nil, err
		}
		c, ok := s.analyze(newCfg, oldCfg)
		if !ok {
			continue
		}
		c.Commit, c.Subject = commit, subject
		files, err := s.g.run(ctx, "diff-tree", "-r", "-z", "--no-commit-id", "--name-only", "--no-renames", "--root", commit)
		if err != nil {
			return nil, err
		}
		for _, p := range strings.Split(files, "\x00") {
			if p != "" {
				c.Files = append(c.Files, p)
			}
		}
		cands = append(cands, c)
	}
	return cands, nil
}

// analyze decides whether the change from old to new introduced the version for the
// release, and what else it changed.
func (s *searcher) analyze(newCfg, oldCfg *moduleConfig) (candidate, bool) {
	var c candidate
	if newCfg.count <= oldCfg.count {
		return c, false // the version string was removed or moved, not added
	}
	target, resolved, why := newCfg.versionRefs(s.resource)
	self := "canary_release." + s.resource
	var introduced []site
	for k, st := range newCfg.sites {
		if st.Value != s.version || !newCfg.versionish(st.ID) {
			continue
		}
		if old, ok := oldCfg.sites[k]; ok && old.Value == s.version {
			continue
		}
		if resolved && !target[st.ID] {
			continue
		}
		introduced = append(introduced, st)
	}
	if len(introduced) == 0 {
		return c, false
	}
	sort.Slice(introduced, func(i, j int) bool { return introduced[i].key() < introduced[j].key() })
	for _, st := range introduced {
		c.Sets = append(c.Sets, fmt.Sprintf("%s in %s", st.ID, st.Where))
	}
	if !resolved {
		c.unresolved = why
	}

	others := map[string]bool{}
	// Other canary_release blocks the commit added, removed or edited.
	for name := range unionKeys(newCfg.releases, oldCfg.releases) {
		if name == s.resource {
			continue
		}
		n, o := newCfg.releases[name], oldCfg.releases[name]
		if n == nil || o == nil || n.Fingerprint != o.Fingerprint {
			others["canary_release."+name] = true
		}
	}
	// Version values the commit changed that feed other releases, or that feed nothing
	// this package can see (a module input, a stray *_version variable).
	for k := range unionKeys(newCfg.sites, oldCfg.sites) {
		n, nok := newCfg.sites[k]
		o, ook := oldCfg.sites[k]
		if nok && ook && n.Value == o.Value {
			continue
		}
		id := n.ID
		if !nok {
			id = o.ID
		}
		if !newCfg.versionish(id) && !oldCfg.versionish(id) {
			continue
		}
		for _, owner := range append(newCfg.owners(id), oldCfg.owners(id)...) {
			if owner != s.resource {
				others["canary_release."+owner] = true
			}
		}
		if id == self || (resolved && target[id]) || strings.HasPrefix(id, "canary_release.") {
			continue
		}
		others[id] = true
	}
	for o := range others {
		c.OtherReleases = append(c.OtherReleases, o)
	}
	sort.Strings(c.OtherReleases)
	return c, true
}

func unionKeys[V any](a, b map[string]V) map[string]bool {
	out := make(map[string]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}
