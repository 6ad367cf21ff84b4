"""The server: data tree, sessions, watches, ACLs and the request pipeline."""
