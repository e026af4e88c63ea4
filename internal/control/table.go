package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	memdb "github.com/hashicorp/go-memdb"
)

// Rows are what go-memdb indexes: an id, index values and the record.
// Records are never changed once inserted: a change inserts a copy.
type approvalRow struct {
	ID         string
	BindingKey string
	Subject    string
	A          *Approval
	// doc is the record exactly as stored: a change names it as the
	// record it was decided on (Change.Prev).
	doc []byte
}

type grantRow struct {
	ID      string
	Subject string
	Group   string
	G       *Grant
	// input is the grant as policy reads it (input.grants), built once:
	// requests share it and never modify it.
	input map[string]any
	doc   []byte
}

type quarantineRow struct {
	ID  string
	Key string
	Q   *Quarantine
	doc []byte
}

const (
	tableApprovals   = "approvals"
	tableGrants      = "grants"
	tableQuarantines = "quarantines"
)

func schema() *memdb.DBSchema {
	str := func(name, field string, unique, missing bool) *memdb.IndexSchema {
		return &memdb.IndexSchema{Name: name, Unique: unique, AllowMissing: missing, Indexer: &memdb.StringFieldIndex{Field: field}}
	}
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableApprovals: {Name: tableApprovals, Indexes: map[string]*memdb.IndexSchema{
			"id":      str("id", "ID", true, false),
			"binding": str("binding", "BindingKey", false, false),
			"subject": str("subject", "Subject", false, true),
		}},
		tableGrants: {Name: tableGrants, Indexes: map[string]*memdb.IndexSchema{
			"id":      str("id", "ID", true, false),
			"subject": str("subject", "Subject", false, true),
			"group":   str("group", "Group", false, true),
		}},
		tableQuarantines: {Name: tableQuarantines, Indexes: map[string]*memdb.IndexSchema{
			"id":  str("id", "ID", true, false),
			"key": str("key", "Key", false, false),
		}},
	}}
}

func newApprovalRow(a *Approval, doc []byte) *approvalRow {
	return &approvalRow{ID: a.ID, BindingKey: a.key(), Subject: a.Subject, A: a, doc: doc}
}

func newGrantRow(g *Grant, doc []byte) *grantRow {
	return &grantRow{ID: g.ID, Subject: g.Subject, Group: g.Group, G: g, input: grantInput(g), doc: doc}
}

func newQuarantineRow(q *Quarantine, doc []byte) *quarantineRow {
	return &quarantineRow{ID: q.ID, Key: q.key(), Q: q, doc: doc}
}

// rowDoc is the stored document of a row (nil for none).
func rowDoc(obj any) []byte {
	switch r := obj.(type) {
	case *approvalRow:
		return r.doc
	case *grantRow:
		return r.doc
	case *quarantineRow:
		return r.doc
	}
	return nil
}

// decodeRow turns a stored document into its row.
func decodeRow(kind Kind, id string, doc []byte) (table string, row any, err error) {
	switch kind {
	case KindApproval:
		var a Approval
		if err = json.Unmarshal(doc, &a); err == nil && a.ID == id {
			return tableApprovals, newApprovalRow(&a, doc), nil
		}
	case KindGrant:
		var g Grant
		if err = json.Unmarshal(doc, &g); err == nil && g.ID == id {
			return tableGrants, newGrantRow(&g, doc), nil
		}
	case KindQuarantine:
		var q Quarantine
		if err = json.Unmarshal(doc, &q); err == nil && q.ID == id {
			return tableQuarantines, newQuarantineRow(&q, doc), nil
		}
	default:
		return "", nil, fmt.Errorf("unknown table %q", kind)
	}
	if err == nil {
		err = fmt.Errorf("record is stored under another id")
	}
	return "", nil, fmt.Errorf("%s record %q: %w", kind, id, err)
}

// The clones below are what leaves the package: a record held by go-memdb
// is never handed to a callback or a caller, so none of them can change
// what the request path reads.

func (a *Approval) clone() *Approval {
	cp := *a
	cp.Arguments = bytes.Clone(a.Arguments)
	cp.SubjectRoles, cp.SubjectGroups = slices.Clone(a.SubjectRoles), slices.Clone(a.SubjectGroups)
	return &cp
}

func (g *Grant) clone() *Grant {
	cp := *g
	cp.Tools, cp.Conditions = slices.Clone(g.Tools), cloneConditions(g.Conditions)
	return &cp
}

func (q *Quarantine) clone() *Quarantine {
	cp := *q
	return &cp
}

func cloneConditions(cs []Condition) []Condition {
	if cs == nil {
		return nil
	}
	out := make([]Condition, len(cs))
	for i, cd := range cs {
		out[i] = cd
		out[i].Value = bytes.Clone(cd.Value)
	}
	return out
}

// detach gives an event its own copies of the record and binding.
func detach(e Event) Event {
	if e.Binding != nil {
		b := *e.Binding
		e.Binding = &b
	}
	switch d := e.Detail.(type) {
	case *Approval:
		e.Detail = d.clone()
	case *Grant:
		e.Detail = d.clone()
	case *Quarantine:
		e.Detail = d.clone()
	}
	return e
}
