"""Co-registration of MR with PET/CT, and the PET <-> CT frame check (see ``localize.register``)."""
