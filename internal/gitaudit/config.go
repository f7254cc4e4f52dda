package gitaudit

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// This file reads just enough of a Terraform root module (native HCL and JSON syntax,
// plus .tfvars) to answer three questions about one revision:
//   - which literal string values are assigned at places that plausibly set a version
//     (a canary_release's "version", a variable default, a tfvars value, a local, any
//     attribute whose name contains "version");
//   - how each canary_release's version is set (a literal, var.X or local.X);
//   - what every canary_release block contains (to see which blocks a commit changed).
// It is deliberately not a full HCL parser: anything it cannot classify is treated as
// "unknown", which the search turns into manual triage rather than a guess.

// site is one assignment of a literal string at a version-setting place.
type site struct {
	ID    string // canary_release.NAME, var.NAME, local.NAME, or TYPE.LABELS.ATTR
	Where string // file name (relative to the module directory), plus " (default)" for variables
	Value string
}

func (s site) key() string { return s.Where + "\x00" + s.ID }

// release is one canary_release block.
type release struct {
	Name        string
	Fingerprint string // the block's tokens, formatting ignored
	Literal     string // the version, when it is a plain string
	HasLiteral  bool
	Ref         string // var.X or local.X, when the version is exactly that reference
	Expr        string // the version expression's source, for messages
	HasVersion  bool
}

// moduleConfig is what one revision of the module directory says.
type moduleConfig struct {
	releases map[string]*release
	sites    map[string]site   // by site.key()
	locals   map[string]string // local name -> the var./local. reference it is set to
	count    int               // occurrences of the searched version string in all files
}

func newModuleConfig() *moduleConfig {
	return &moduleConfig{releases: map[string]*release{}, sites: map[string]site{}, locals: map[string]string{}}
}

// isConfigFile reports whether Terraform reads the file as configuration or variable
// values: *.tf, *.tf.json, *.tfvars (terraform.tfvars, *.auto.tfvars and -var-file
// files) and *.tfvars.json.
func isConfigFile(name string) bool {
	for _, ext := range configExts {
		if strings.HasSuffix(name, ext) && len(name) > len(ext) {
			return true
		}
	}
	return false
}

var configExts = []string{".tf", ".tf.json", ".tfvars", ".tfvars.json"}

// addFile folds one file into the configuration. version is the searched string, counted.
func (c *moduleConfig) addFile(name, content, version string) {
	c.count += strings.Count(content, version)
	switch {
	case strings.HasSuffix(name, ".tf.json"):
		c.addTFJSON(name, content)
	case strings.HasSuffix(name, ".tfvars.json"):
		var m map[string]any
		if json.Unmarshal([]byte(content), &m) == nil {
			for k, v := range m {
				if s, ok := v.(string); ok {
					c.addSite(site{ID: "var." + k, Where: name, Value: s})
				}
			}
		}
	case strings.HasSuffix(name, ".tfvars"):
		body := parseHCL(scanHCL(content))
		for _, a := range body.attrs {
			if v, ok := literalOf(a.expr); ok {
				c.addSite(site{ID: "var." + a.name, Where: name, Value: v})
			}
		}
	case strings.HasSuffix(name, ".tf"):
		c.addTF(name, content)
	}
}

func (c *moduleConfig) addSite(s site) {
	if _, dup := c.sites[s.key()]; !dup {
		c.sites[s.key()] = s
	}
}

func (c *moduleConfig) addRelease(r *release) {
	if _, dup := c.releases[r.Name]; !dup {
		c.releases[r.Name] = r
	}
}

func (c *moduleConfig) addTF(name, content string) {
	body := parseHCL(scanHCL(content))
	for _, b := range body.blocks {
		switch {
		case b.typ == "resource" && len(b.labels) == 2 && b.labels[0] == "canary_release":
			r := &release{Name: b.labels[1], Fingerprint: b.fingerprint}
			if a, ok := b.attr("version"); ok {
				r.HasVersion = true
				r.Expr = exprText(a.expr)
				if v, ok := literalOf(a.expr); ok {
					r.Literal, r.HasLiteral = v, true
					c.addSite(site{ID: "canary_release." + r.Name, Where: name, Value: v})
				} else if ref, ok := refOf(a.expr); ok {
					r.Ref = ref
				}
			}
			c.addRelease(r)
		case b.typ == "variable" && len(b.labels) == 1:
			if a, ok := b.attr("default"); ok {
				if v, ok := literalOf(a.expr); ok {
					c.addSite(site{ID: "var." + b.labels[0], Where: name + " (default)", Value: v})
				}
			}
		case b.typ == "locals" && len(b.labels) == 0:
			for _, a := range b.attrs {
				if v, ok := literalOf(a.expr); ok {
					c.addSite(site{ID: "local." + a.name, Where: name, Value: v})
				} else if ref, ok := refOf(a.expr); ok {
					c.locals[a.name] = ref
				}
			}
		default:
			for _, a := range b.attrs {
				if !versionName(a.name) {
					continue
				}
				if v, ok := literalOf(a.expr); ok {
					id := strings.Join(append(append([]string{b.typ}, b.labels...), a.name), ".")
					c.addSite(site{ID: id, Where: name, Value: v})
				}
			}
		}
	}
}

func (c *moduleConfig) addTFJSON(name, content string) {
	var root map[string]any
	if json.Unmarshal([]byte(content), &root) != nil {
		return
	}
	for _, res := range jsonObjects(root["resource"]) {
		for _, rel := range jsonObjects(res["canary_release"]) {
			for relName, bodyAny := range rel {
				for _, body := range jsonObjects(bodyAny) {
					fp, _ := json.Marshal(body)
					r := &release{Name: relName, Fingerprint: string(fp)}
					if v, ok := body["version"]; ok {
						r.HasVersion = true
						if s, ok := v.(string); ok {
							r.Expr = s
							if m := jsonRefRE.FindStringSubmatch(s); m != nil {
								r.Ref = m[1]
							} else if !strings.Contains(s, "${") && !strings.Contains(s, "%{") {
								r.Literal, r.HasLiteral = s, true
								c.addSite(site{ID: "canary_release." + relName, Where: name, Value: s})
							}
						} else {
							b, _ := json.Marshal(v)
							r.Expr = string(b)
						}
					}
					c.addRelease(r)
				}
			}
		}
	}
	for _, vars := range jsonObjects(root["variable"]) {
		for vName, bodyAny := range vars {
			for _, body := range jsonObjects(bodyAny) {
				if s, ok := body["default"].(string); ok {
					c.addSite(site{ID: "var." + vName, Where: name + " (default)", Value: s})
				}
			}
		}
	}
	for _, locals := range jsonObjects(root["locals"]) {
		for lName, v := range locals {
			s, ok := v.(string)
			if !ok {
				continue
			}
			if m := jsonRefRE.FindStringSubmatch(s); m != nil {
				c.locals[lName] = m[1]
			} else if !strings.Contains(s, "${") {
				c.addSite(site{ID: "local." + lName, Where: name, Value: s})
			}
		}
	}
}

var jsonRefRE = regexp.MustCompile(`^\$\{\s*((?:var|local)\.[A-Za-z_][A-Za-z0-9_-]*)\s*\}$`)

// jsonObjects accepts Terraform JSON's two shapes for a block map: an object, or an
// array of objects.
func jsonObjects(v any) []map[string]any {
	switch t := v.(type) {
	case map[string]any:
		return []map[string]any{t}
	case []any:
		var out []map[string]any
		for _, e := range t {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}

func versionName(attr string) bool { return strings.Contains(strings.ToLower(attr), "version") }

// versionRefs follows how release name's version is set, through locals, and returns
// every place that feeds it. ok is false when the release is missing or its version is
// an expression this package does not follow.
func (c *moduleConfig) versionRefs(name string) (ids map[string]bool, ok bool, why string) {
	r, found := c.releases[name]
	if !found {
		return nil, false, "canary_release." + name + " is not in the configuration"
	}
	if !r.HasVersion {
		return nil, false, "canary_release." + name + " has no version attribute"
	}
	ids = map[string]bool{}
	if r.HasLiteral {
		ids["canary_release."+name] = true
		return ids, true, ""
	}
	ref := r.Ref
	for depth := 0; ref != "" && depth < 16; depth++ {
		if ids[ref] {
			break
		}
		ids[ref] = true
		if !strings.HasPrefix(ref, "local.") {
			break
		}
		ref = c.locals[strings.TrimPrefix(ref, "local.")]
	}
	if len(ids) == 0 {
		return nil, false, "canary_release." + name + " sets its version with the expression " + quoteShort(r.Expr)
	}
	return ids, true, ""
}

// owners lists the releases whose version is fed by id.
func (c *moduleConfig) owners(id string) []string {
	var out []string
	for name := range c.releases {
		if ids, ok, _ := c.versionRefs(name); ok && ids[id] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// versionish reports whether an assignment at id plausibly sets a version.
func (c *moduleConfig) versionish(id string) bool {
	if strings.HasPrefix(id, "canary_release.") {
		return true // only the version attribute of a release becomes a site
	}
	last := id[strings.LastIndexByte(id, '.')+1:]
	return versionName(last) || len(c.owners(id)) > 0
}

func quoteShort(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		cut := 80
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return "`" + s + "`"
}

// ---- a small HCL tokenizer and structural parser ----

type tokKind int

const (
	tIdent    tokKind = iota
	tString           // a quoted string without interpolation; val holds its value
	tTemplate         // a quoted string with interpolation, or a heredoc
	tLBrace
	tRBrace
	tOpen  // ( or [
	tClose // ) or ]
	tEq
	tNewline
	tOther
)

type token struct {
	kind tokKind
	text string // source text
	val  string // decoded value of a tString
}

func scanHCL(src string) []token {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '\n':
			toks = append(toks, token{kind: tNewline, text: "\n"})
			i++
		case c == '#' || (c == '/' && i+1 < len(src) && src[i+1] == '/'):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				i = len(src)
			} else {
				i += 2 + end + 2
			}
		case c == '"':
			t, n := scanString(src[i:])
			toks = append(toks, t)
			i += n
		case c == '<' && strings.HasPrefix(src[i:], "<<"):
			if t, n, ok := scanHeredoc(src[i:]); ok {
				toks = append(toks, t)
				i += n
			} else {
				toks = append(toks, token{kind: tOther, text: "<<"})
				i += 2
			}
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{kind: tIdent, text: src[i:j]})
			i = j
		case c == '{':
			toks = append(toks, token{kind: tLBrace, text: "{"})
			i++
		case c == '}':
			toks = append(toks, token{kind: tRBrace, text: "}"})
			i++
		case c == '(' || c == '[':
			toks = append(toks, token{kind: tOpen, text: string(c)})
			i++
		case c == ')' || c == ']':
			toks = append(toks, token{kind: tClose, text: string(c)})
			i++
		case c == '=' && (i+1 >= len(src) || src[i+1] != '=' && src[i+1] != '>'):
			toks = append(toks, token{kind: tEq, text: "="})
			i++
		case (c == '=' || c == '!' || c == '<' || c == '>') && i+1 < len(src) && (src[i+1] == '=' || src[i+1] == '>'):
			toks = append(toks, token{kind: tOther, text: src[i : i+2]})
			i += 2
		default:
			_, n := utf8.DecodeRuneInString(src[i:])
			toks = append(toks, token{kind: tOther, text: src[i : i+n]})
			i += n
		}
	}
	return toks
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c == '-' || c == '.' }

// scanString reads a quoted string starting at s[0] == '"'. It returns a tString with its
// decoded value, or a tTemplate when the string interpolates.
func scanString(s string) (token, int) {
	var val strings.Builder
	tmpl := false
	i := 1
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			i++
			if tmpl {
				return token{kind: tTemplate, text: s[:i]}, i
			}
			return token{kind: tString, text: s[:i], val: val.String()}, i
		case c == '\n':
			// unterminated string: stop at the line end
			return token{kind: tTemplate, text: s[:i]}, i
		case c == '\\' && i+1 < len(s):
			switch s[i+1] {
			case 'n':
				val.WriteByte('\n')
			case 't':
				val.WriteByte('\t')
			case 'r':
				val.WriteByte('\r')
			case '"', '\\':
				val.WriteByte(s[i+1])
			default:
				tmpl = true // \u escapes and the like: not compared literally
			}
			i += 2
		case (c == '$' || c == '%') && strings.HasPrefix(s[i+1:], string(c)+"{"):
			val.WriteString(string(c) + "{") // $${ and %%{ are literal
			i += 3
		case (c == '$' || c == '%') && i+1 < len(s) && s[i+1] == '{':
			tmpl = true
			i = skipInterpolation(s, i+2)
		default:
			val.WriteByte(c)
			i++
		}
	}
	return token{kind: tTemplate, text: s}, len(s)
}

// skipInterpolation returns the index after the '}' closing an interpolation whose body
// starts at s[i].
func skipInterpolation(s string, i int) int {
	depth := 1
	for i < len(s) && depth > 0 {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
		case '"':
			_, n := scanString(s[i:])
			i += n
			continue
		case '\n':
			return i
		}
		i++
	}
	return i
}

var heredocRE = regexp.MustCompile(`^<<-?([A-Za-z_][A-Za-z0-9_-]*)[ \t]*\r?\n`)

func scanHeredoc(s string) (token, int, bool) {
	m := heredocRE.FindStringSubmatch(s)
	if m == nil {
		return token{}, 0, false
	}
	i := len(m[0])
	for i < len(s) {
		end := strings.IndexByte(s[i:], '\n')
		line := s[i:]
		if end >= 0 {
			line = s[i : i+end]
		}
		if strings.TrimSpace(line) == m[1] {
			n := i + len(line) // stop before the newline, which ends the attribute
			return token{kind: tTemplate, text: s[:n]}, n, true
		}
		if end < 0 {
			break
		}
		i += end + 1
	}
	return token{kind: tTemplate, text: s}, len(s), true
}

type hclAttr struct {
	name string
	expr []token
}

type hclBlock struct {
	typ         string
	labels      []string
	attrs       []hclAttr
	blocks      []*hclBlock
	fingerprint string
}

func (b *hclBlock) attr(name string) (hclAttr, bool) {
	for _, a := range b.attrs {
		if a.name == name {
			return a, true
		}
	}
	return hclAttr{}, false
}

// parseHCL parses a body (a file's top level) into attributes and blocks.
func parseHCL(toks []token) *hclBlock {
	root := &hclBlock{}
	parseBody(toks, 0, root)
	return root
}

// parseBody fills b from toks[i:] up to the '}' closing it (or the end) and returns the
// index just after that '}'.
func parseBody(toks []token, i int, b *hclBlock) int {
	start := i
	for i < len(toks) {
		t := toks[i]
		switch {
		case t.kind == tNewline:
			i++
		case t.kind == tRBrace:
			b.fingerprint = fingerprint(toks[start:i])
			return i + 1
		case t.kind == tIdent && i+1 < len(toks) && toks[i+1].kind == tEq:
			j := i + 2
			depth := 0
			for j < len(toks) {
				k := toks[j].kind
				if depth == 0 && (k == tNewline || k == tRBrace) {
					break
				}
				switch k {
				case tLBrace, tOpen:
					depth++
				case tRBrace, tClose:
					depth--
				}
				j++
			}
			b.attrs = append(b.attrs, hclAttr{name: t.text, expr: toks[i+2 : j]})
			i = j
		case t.kind == tIdent:
			j := i + 1
			var labels []string
			for j < len(toks) && (toks[j].kind == tString || toks[j].kind == tIdent) {
				if toks[j].kind == tString {
					labels = append(labels, toks[j].val)
				} else {
					labels = append(labels, toks[j].text)
				}
				j++
			}
			if j < len(toks) && toks[j].kind == tLBrace {
				child := &hclBlock{typ: t.text, labels: labels}
				i = parseBody(toks, j+1, child)
				b.blocks = append(b.blocks, child)
			} else {
				i = skipLine(toks, j)
			}
		case t.kind == tLBrace:
			i = parseBody(toks, i+1, &hclBlock{}) // stray braces: skip balanced
		default:
			i = skipLine(toks, i+1)
		}
	}
	b.fingerprint = fingerprint(toks[start:])
	return i
}

func skipLine(toks []token, i int) int {
	for i < len(toks) && toks[i].kind != tNewline && toks[i].kind != tRBrace {
		i++
	}
	return i
}

func fingerprint(toks []token) string {
	var b strings.Builder
	for _, t := range toks {
		if t.kind == tNewline {
			continue
		}
		b.WriteString(t.text)
		b.WriteByte(0)
	}
	return b.String()
}

func literalOf(expr []token) (string, bool) {
	if len(expr) == 1 && expr[0].kind == tString {
		return expr[0].val, true
	}
	return "", false
}

var refRE = regexp.MustCompile(`^(?:var|local)\.[A-Za-z_][A-Za-z0-9_-]*$`)
var tmplRefRE = regexp.MustCompile(`^"\$\{\s*((?:var|local)\.[A-Za-z_][A-Za-z0-9_-]*)\s*\}"$`)

// refOf recognises `var.X`, `local.X` and the legacy "${var.X}".
func refOf(expr []token) (string, bool) {
	if len(expr) != 1 {
		return "", false
	}
	switch expr[0].kind {
	case tIdent:
		if refRE.MatchString(expr[0].text) {
			return expr[0].text, true
		}
	case tTemplate:
		if m := tmplRefRE.FindStringSubmatch(expr[0].text); m != nil {
			return m[1], true
		}
	}
	return "", false
}

func exprText(expr []token) string {
	parts := make([]string, 0, len(expr))
	for _, t := range expr {
		if t.kind != tNewline {
			parts = append(parts, t.text)
		}
	}
	return strings.Join(parts, " ")
}
