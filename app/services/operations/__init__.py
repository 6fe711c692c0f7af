"""Operations (API.md §7) and the audit log: the record of every change to a warehouse."""
