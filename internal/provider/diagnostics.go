package provider

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"

	"github.com/canaryops/terraform-provider-canary/runner"
)

type validatorString = validator.String

// durationValidator accepts Go durations such as "30s", "5m", "1h30m".
type durationValidator struct{ allowZero bool }

func (v durationValidator) Description(context.Context) string {
	return "a duration such as \"30s\", \"5m\" or \"1h\""
}

func (v durationValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v durationValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Duration",
			fmt.Sprintf("%s is %q, which is not a duration. Write a number with a unit: \"30s\", \"5m\", \"1h30m\".\n\nOriginal Error: %s", req.Path, s, err))
	case d < 0 || (d == 0 && !v.allowZero):
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Duration",
			fmt.Sprintf("%s is %q; it must be greater than zero.", req.Path, s))
	}
}

// oneOfValidator accepts one of a fixed set of words.
type oneOfValidator []string

func (v oneOfValidator) Description(context.Context) string {
	return "one of " + quoteList(v)
}

func (v oneOfValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v oneOfValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	for _, ok := range v {
		if s == ok {
			return
		}
	}
	resp.Diagnostics.AddAttributeError(req.Path, "Invalid Value",
		fmt.Sprintf("%s is %q; use %s.", req.Path, s, quoteList(v)))
}

func quoteList(v []string) string {
	q := make([]string, len(v))
	for i, s := range v {
		q[i] = strconv.Quote(s)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

var fieldPart = regexp.MustCompile(`^([a-z_]+)(?:\[(\d+)\])?$`)

// configPath turns a runner field such as "stages[1].hosts" into an attribute path under base.
func configPath(base path.Path, field string) path.Path {
	p := base
	for _, part := range strings.Split(field, ".") {
		m := fieldPart.FindStringSubmatch(part)
		if m == nil {
			return p
		}
		p = p.AtName(m[1])
		if m[2] != "" {
			i, _ := strconv.Atoi(m[2])
			p = p.AtListIndex(i)
		}
	}
	return p
}

// addConfigErrors reports runner configuration errors on the attributes they name. fieldMap
// renames runner fields to attribute paths where they differ (hosts -> fleet.hosts).
func addConfigErrors(diags *diag.Diagnostics, err error, fieldMap func(string) path.Path) {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var ce *runner.ConfigError
		if errors.As(e, &ce) {
			p := fieldMap(ce.Field)
			diags.AddAttributeError(p, "Invalid Release Configuration", fmt.Sprintf("%s: %s", p, ce.Msg))
			continue
		}
		diags.AddError("Invalid Release Configuration", e.Error())
	}
}

type diagsT = diag.Diagnostics

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
