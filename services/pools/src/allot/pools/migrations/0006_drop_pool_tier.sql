-- Pools had a "tier" that nothing read. Seed 001's tiers rank POOLS against each other (redistribute within a
-- tier first, cross-tier moves need a larger margin); an Allot pool holds a fixed daily budget and nothing
-- moves budget between pools, so there is nothing for a tier to rank. Removed rather than kept as a stored
-- promise. (Allocation logs keep the settings snapshot they were taken with, old "tier" included.)
ALTER TABLE pools DROP COLUMN tier;
