-- Who made each enforcement decision (the admin API's actor, or the detector's stage):
-- with control_records.who, every control-plane change is audited with who, what, when.
ALTER TABLE {{database}}.enforcement_decisions
    ADD COLUMN IF NOT EXISTS decided_by String DEFAULT '' AFTER anomaly_id;
