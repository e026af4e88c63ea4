package acme.authz

allow if input.user == "alice"
