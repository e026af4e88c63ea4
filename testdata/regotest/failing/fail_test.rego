package regotest.failing

allow if input.user == "alice"

test_alice_allowed if allow with input as {"user": "alice"}

# Fails on purpose: bob is not allowed.
test_bob_allowed if allow with input as {"user": "bob"}
