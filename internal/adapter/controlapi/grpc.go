package controlapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict/internal/control"
	controlv1 "github.com/verdictpdp/verdict/proto/verdict/control/v1"
)

// Service implements verdict.control.v1.ControlService.
type Service struct {
	controlv1.UnimplementedControlServiceServer
	Controls *control.Controls
	Auth     Approvers
}

var _ controlv1.ControlServiceServer = (*Service)(nil)

func (s *Service) approver(ctx context.Context) (control.Approver, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	auth := ""
	if v := md.Get("authorization"); len(v) == 1 {
		auth = v[0]
	}
	ap, e := s.Auth.Approver(ctx, auth)
	if e != nil {
		return ap, grpcError(e)
	}
	return ap, nil
}

// grpcError maps a refusal onto a status with the reason code in an
// ErrorInfo; internal causes never reach the caller.
func grpcError(err error) error {
	e := control.ErrorOf(err)
	var c codes.Code
	switch e.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		c = codes.InvalidArgument
	case http.StatusUnauthorized:
		c = codes.Unauthenticated
	case http.StatusForbidden:
		c = codes.PermissionDenied
	case http.StatusNotFound:
		c = codes.NotFound
	case http.StatusConflict:
		c = codes.FailedPrecondition
	case http.StatusTooManyRequests:
		c = codes.ResourceExhausted
	default:
		c = codes.Unavailable
	}
	st := status.New(c, e.Code+": "+e.Message)
	info := &errdetails.ErrorInfo{Reason: e.Code, Domain: "verdictpdp.io"}
	for i, r := range e.Reasons {
		if i == 0 {
			info.Metadata = map[string]string{}
		}
		info.Metadata[r.Code] = r.Message
	}
	if d, err := st.WithDetails(info); err == nil {
		st = d
	}
	return st.Err()
}

func ts(t interface{ IsZero() bool }) bool { return !t.IsZero() }

func approvalProto(v control.View) *controlv1.Approval {
	p := &controlv1.Approval{
		Id: v.ID, Status: string(v.Status), Subject: v.Subject, Server: v.Server, Method: v.Method, Target: v.Target,
		ArgumentsSha256: v.ArgumentsSHA256, Revision: v.Revision, DecisionId: v.DecisionID, Reason: v.Reason, Url: v.URL,
		CreatedAt: timestamppb.New(v.CreatedAt), ExpiresAt: timestamppb.New(v.ExpiresAt), ResolvedBy: v.ResolvedBy,
		Note: v.Note, ConsumedBy: v.ConsumedBy, SubjectRoles: v.SubjectRoles, SubjectGroups: v.SubjectGroups,
		SubjectTenant: v.SubjectTenant,
	}
	if v.TTLSeconds > 0 {
		p.Ttl = durationpb.New(time.Duration(v.TTLSeconds) * time.Second)
	}
	if ts(v.ResolvedAt) {
		p.ResolvedAt = timestamppb.New(v.ResolvedAt)
	}
	if ts(v.ConsumedAt) {
		p.ConsumedAt = timestamppb.New(v.ConsumedAt)
	}
	if len(v.Arguments) > 0 {
		var args any
		if json.Unmarshal(v.Arguments, &args) == nil {
			if pv, err := structpb.NewValue(args); err == nil {
				p.Arguments = pv
			}
		}
	}
	return p
}

func grantProto(g control.Grant) *controlv1.Grant {
	p := &controlv1.Grant{
		Id: g.ID, Subject: g.Subject, Group: g.Group, Tools: g.Tools, Status: string(g.Status), GrantedBy: g.GrantedBy,
		Note: g.Note, CreatedAt: timestamppb.New(g.CreatedAt), ExpiresAt: timestamppb.New(g.ExpiresAt), RevokedBy: g.RevokedBy,
	}
	if ts(g.RevokedAt) {
		p.RevokedAt = timestamppb.New(g.RevokedAt)
	}
	for _, c := range g.Conditions {
		pc := &controlv1.Condition{Path: c.Path, Op: c.Op, Optional: c.Optional}
		var v any
		if json.Unmarshal(c.Value, &v) == nil {
			pc.Value, _ = structpb.NewValue(v)
		}
		p.Conditions = append(p.Conditions, pc)
	}
	return p
}

func quarantineProto(q control.Quarantine) *controlv1.Quarantine {
	p := &controlv1.Quarantine{
		Id: q.ID, Kind: string(q.Kind), Server: q.Server, Tool: q.Tool, Subject: q.Subject, Session: q.Session, Rule: q.Rule, Active: q.Active,
		CreatedBy: q.CreatedBy, Note: q.Note, CreatedAt: timestamppb.New(q.CreatedAt), ReleasedBy: q.ReleasedBy,
	}
	if ts(q.ExpiresAt) {
		p.ExpiresAt = timestamppb.New(q.ExpiresAt)
	}
	if ts(q.ReleasedAt) {
		p.ReleasedAt = timestamppb.New(q.ReleasedAt)
	}
	return p
}

// ListApprovals implements ControlService.
func (s *Service) ListApprovals(ctx context.Context, req *controlv1.ListApprovalsRequest) (*controlv1.ListApprovalsResponse, error) {
	ap, err := s.approver(ctx)
	if err != nil {
		return nil, err
	}
	list, err := s.Controls.Approvals(ctx, ap, control.Filter{Status: control.Status(req.GetStatus()), Subject: req.GetSubject(), Limit: int(req.GetLimit())})
	if err != nil {
		return nil, grpcError(err)
	}
	out := &controlv1.ListApprovalsResponse{}
	for _, v := range list {
		out.Approvals = append(out.Approvals, approvalProto(v))
	}
	return out, nil
}

// GetApproval implements ControlService.
func (s *Service) GetApproval(ctx context.Context, req *controlv1.GetApprovalRequest) (*controlv1.GetApprovalResponse, error) {
	ap, err := s.approver(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.Controls.Approval(ctx, ap, req.GetId())
	if err != nil {
		return nil, grpcError(err)
	}
	return &controlv1.GetApprovalResponse{Approval: approvalProto(v)}, nil
}

// ApproveApproval implements ControlService.
func (s *Service) ApproveApproval(ctx context.Context, req *controlv1.ApproveApprovalRequest) (*controlv1.ApproveApprovalResponse, error) {
	ap, err := s.approver(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.Controls.Resolve(ctx, ap, req.GetId(), true, req.GetNote())
	if err != nil {
		return nil, grpcError(err)
	}
	return &controlv1.ApproveApprovalResponse{Approval: approvalProto(v)}, nil
}

// DenyApproval implements ControlService.
func (s *Service) DenyApproval(ctx context.Context, req *controlv1.DenyApprovalRequest) (*controlv1.DenyApprovalResponse, error) {
	ap, err := s.approver(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.Controls.Resolve(ctx, ap, req.GetId(), false, req.GetNote())
	if err != nil {
		return nil, grpcError(err)
	}
	return &controlv1.DenyApprovalResponse{Approval: approvalProto(v)}, nil
}

// CreateGrant implements ControlService.
func (s *Service) CreateGrant(ctx context.Context, req *controlv1.CreateGrantRequest) (*controlv1.CreateGrantResponse, error) {
	ap, err := s.approver(ctx)
	if err != nil {
		return nil, err
	}
	r := control.GrantRequest{Subject: req.GetSubject(), Group: req.GetGroup(), Tools: req.GetTools(), Note: req.GetNote()}
	if d := req.GetDuration(); d != nil {
		r.Duration = d.AsDuration()
		if r.Duration == 0 {
			r.Duration = -1 // a zero duration bounds nothing: refused
		}
	}
	if t := req.GetExpiresAt(); t != nil {
		r.ExpiresAt = t.AsTime()
	}
	for _, c := range req.GetConditions() {
		raw, err := c.GetValue().MarshalJSON()
		if err != nil || c.GetValue() == nil {
			return nil, grpcError(&control.Error{Code: control.CodeInvalidGrant, Status: http.StatusBadRequest, Message: "a condition needs a value"})
		}
		r.Conditions = append(r.Conditions, control.Condition{Path: c.GetPath(), Op: c.GetOp(), Value: raw, Optional: c.GetOptional()})
	}
	g, err := s.Controls.Grant(ctx, ap, r)
	if err != nil {
		return nil, grpcError(err)
	}
	return &controlv1.CreateGrantResponse{Grant: grantProto(g)}, nil
}

// ListGrants implements ControlService.
func (s *Service) ListGrants(ctx context.Context, req *controlv1.ListGrantsRequest) (*controlv1.ListGrantsResponse, error) {
	ap, err := s.approver(ctx)
	if err != nil {
		return nil, err
	}
	list, err := s.Controls.Grants(ctx, ap, req.GetAll())
	if err != nil {
		return nil, grpcError(err)
	}
	out := &controlv1.ListGrantsResponse{}
	for _, g := range list {
		out.Grants = append(out.Grants, grantProto(g))
	}
	return out, nil
}

// RevokeGrant implements ControlService.
func (s *Service) RevokeGrant(ctx context.Context, req *controlv1.RevokeGrantRequest) (*controlv1.RevokeGrantResponse, error) {
	ap, err := s.approver(ctx)
	if err != nil {
		return nil, err
	}
	g, err := s.Controls.Revoke(ctx, ap, req.GetId(), req.GetNote())
	if err != nil {
		return nil, grpcError(err)
	}
	return &controlv1.RevokeGrantResponse{Grant: grantProto(g)}, nil
}

// CreateQuarantine implements ControlService.
func (s *Service) CreateQuarantine(ctx context.Context, req *controlv1.CreateQuarantineRequest) (*controlv1.CreateQuarantineResponse, error) {
	ap, err := s.approver(ctx)
	if err != nil {
		return nil, err
	}
	r := control.QuarantineRequest{Kind: control.QuarantineKind(req.GetKind()), Server: req.GetServer(), Tool: req.GetTool(), Subject: req.GetSubject(), Session: req.GetSession(), Note: req.GetNote()}
	if d := req.GetDuration(); d != nil {
		r.Duration = d.AsDuration()
		if r.Duration <= 0 {
			r.Duration = -1
		}
	}
	q, err := s.Controls.Quarantine(ctx, ap, r)
	if err != nil {
		return nil, grpcError(err)
	}
	return &controlv1.CreateQuarantineResponse{Quarantine: quarantineProto(q)}, nil
}

// ListQuarantines implements ControlService.
func (s *Service) ListQuarantines(ctx context.Context, req *controlv1.ListQuarantinesRequest) (*controlv1.ListQuarantinesResponse, error) {
	ap, err := s.approver(ctx)
	if err != nil {
		return nil, err
	}
	list, err := s.Controls.Quarantines(ctx, ap, req.GetAll())
	if err != nil {
		return nil, grpcError(err)
	}
	out := &controlv1.ListQuarantinesResponse{}
	for _, q := range list {
		out.Quarantines = append(out.Quarantines, quarantineProto(q))
	}
	return out, nil
}

// ReleaseQuarantine implements ControlService.
func (s *Service) ReleaseQuarantine(ctx context.Context, req *controlv1.ReleaseQuarantineRequest) (*controlv1.ReleaseQuarantineResponse, error) {
	ap, err := s.approver(ctx)
	if err != nil {
		return nil, err
	}
	q, err := s.Controls.Release(ctx, ap, req.GetId(), req.GetNote())
	if err != nil {
		return nil, grpcError(err)
	}
	return &controlv1.ReleaseQuarantineResponse{Quarantine: quarantineProto(q)}, nil
}
