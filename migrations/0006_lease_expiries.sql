-- How many times a message's lease expired and was taken over by a lease. An expired lease is a
-- dispatch that never reported back: a replica crashed or its write-back failed. When the
-- dispatch itself kills the process, each replica that takes the message over dies the same
-- way, so the lease counts expiries and gives the message up (`permanent_failure`) at the
-- configured count (`notifier.max_lease_expiries`) instead of leasing it forever.
-- A constant default: adding the column rewrites no row.
ALTER TABLE messages ADD COLUMN lease_expiries integer NOT NULL DEFAULT 0;
