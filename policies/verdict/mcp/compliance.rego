# MCP compliance starter pack. Each rule that adds to applied_controls is
# annotated with the controls it implements (custom.controls in its metadata
# block); the decision returns the controls of every rule that applied. Add
# your own the same way: an annotated applied_controls rule, plus deny rules
# for what the control forbids.
package verdict.mcp

hipaa := object.get(settings, "hipaa", {})

gdpr := object.get(settings, "gdpr", {})

touches_phi if "phi" in categories

touches_personal_data if "personal_data" in categories

touches_personal_data if touches_phi

# Purposes of use: the entry's own list, else the regime's setting.
allowed_purposes(regime, fallback) := object.get(target, "purposes", object.get(regime, "purposes", fallback))

# METADATA
# title: Logical access is granted only by explicit rules
# custom:
#   controls: ["SOC2:CC6.1", "SOC2:CC6.3"]
applied_controls contains c if {
	target_kind
	some c in rego.metadata.rule().custom.controls
}

# METADATA
# title: Confidential and restricted access is marked for full audit
# custom:
#   controls: ["SOC2:CC7.2"]
applied_controls contains c if {
	level_of(target) >= levels.confidential
	some c in rego.metadata.rule().custom.controls
}

full_audit if level_of(target) >= levels.confidential

# METADATA
# title: PHI needs a HIPAA-trained workforce member and a permitted purpose of use
# custom:
#   controls: ["HIPAA:164.308(a)(5)", "HIPAA:164.312(b)", "HIPAA:164.502(b)", "HIPAA:164.506"]
applied_controls contains c if {
	touches_phi
	some c in rego.metadata.rule().custom.controls
}

deny contains reason("hipaa.training", sprintf("%s touches PHI: the subject needs one of the roles %v", [target_name, trained_roles])) if {
	touches_phi
	not hipaa_trained
}

trained_roles := object.get(hipaa, "trained_roles", ["hipaa_trained"])

hipaa_trained if {
	some role in input.subject.roles
	role in trained_roles
}

deny contains reason("hipaa.purpose", sprintf("%s touches PHI: purpose of use must be one of %v", [target_name, purposes])) if {
	touches_phi
	purposes := allowed_purposes(hipaa, ["treatment", "payment", "operations"])
	not purpose in purposes
}

# METADATA
# title: Personal data needs a lawful purpose and an allowed processing region
# custom:
#   controls: ["GDPR:Art.5(1)(b)", "GDPR:Art.6", "GDPR:Art.32", "GDPR:Art.44"]
applied_controls contains c if {
	touches_personal_data
	some c in rego.metadata.rule().custom.controls
}

deny contains reason("gdpr.purpose", sprintf("%s processes personal data: purpose must be one of %v", [target_name, purposes])) if {
	touches_personal_data
	purposes := allowed_purposes(gdpr, ["contract", "legal_obligation", "legitimate_interest", "consent", "support"])
	not purpose in purposes
}

deny contains reason("gdpr.region", sprintf("%s processes personal data: region must be one of %v", [target_name, regions])) if {
	touches_personal_data
	regions := object.get(gdpr, "allowed_regions", ["eu"])
	not region in regions
}
