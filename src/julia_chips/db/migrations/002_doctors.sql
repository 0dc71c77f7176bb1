-- Doctor read models (DESIGN.md "HTTP": GET /doctors/{id}; issue 6: the visible backlog).
-- Disposable like 001's: rebuilt by replaying ROUTE_EVENTS and MSG_EVENTS. Timestamps come
-- from events, never now(). No phone number or message text is stored here (LGPD: the
-- read API has no use for them, so they are not copied out of the streams).

-- One row per doctor seen on `route.evt.<doctor_id>` (projection `doctors`).
CREATE TABLE doctors (
    doctor_id TEXT PRIMARY KEY,
    chip_id TEXT,                          -- the chip holding the conversation; NULL: none
    consented BOOLEAN NOT NULL DEFAULT false,  -- wrote to us or opted in (else prospecting)
    opted_out BOOLEAN NOT NULL DEFAULT false,
    opted_out_since TIMESTAMPTZ,           -- the DoctorOptedOut in force
    opted_out_source TEXT,                 -- "keyword" or the caller's name
    opted_in_at TIMESTAMPTZ,               -- the last DoctorOptedIn
    quarantined_until TIMESTAMPTZ,         -- held from prospecting after a ban of their chip
    quarantine_reason TEXT,
    assigned_at TIMESTAMPTZ,               -- the last ConversationAssigned
    reassigned_at TIMESTAMPTZ,             -- the last ConversationReassigned
    reassigned_from TEXT,
    reassign_reason TEXT,
    replied_at TIMESTAMPTZ,                -- the last DoctorReplied
    first_seen_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,       -- the last applied event's time
    last_seq BIGINT NOT NULL               -- ROUTE_EVENTS sequence of the last applied event
);
CREATE INDEX doctors_chip ON doctors (chip_id) WHERE chip_id IS NOT NULL;

-- One row per RequestQueued: the balancer's durable backlog (projection `route_backlog`).
CREATE TABLE route_backlog (
    request_id TEXT PRIMARY KEY,           -- the SendRequest's command_id
    doctor_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    consented BOOLEAN NOT NULL,
    reason TEXT NOT NULL,                  -- why no chip could take it then
    queued_at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL,                  -- queued | served | cancelled
    settled_at TIMESTAMPTZ,
    chip_id TEXT,                          -- served by
    cancel_reason TEXT,
    last_seq BIGINT NOT NULL
);
CREATE INDEX route_backlog_waiting ON route_backlog (queued_at) WHERE status = 'queued';
CREATE INDEX route_backlog_doctor ON route_backlog (doctor_id);

-- One row per SendAttempted on `msg.evt.<chip_id>` (projection `message_attempts`).
CREATE TABLE message_attempts (
    attempt_id TEXT PRIMARY KEY,           -- the SendRequest's command_id
    chip_id TEXT NOT NULL,
    doctor_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    consented BOOLEAN NOT NULL,
    attempted_at TIMESTAMPTZ NOT NULL,
    outcome TEXT,                          -- dispatched | failed | unknown; NULL: in flight
    settled_at TIMESTAMPTZ,
    outcome_reason TEXT,                   -- SendFailed / SendUnknown's reason
    delivered_at TIMESTAMPTZ,
    read_at TIMESTAMPTZ,
    replied_at TIMESTAMPTZ,
    last_seq BIGINT NOT NULL
);
CREATE INDEX message_attempts_doctor ON message_attempts (doctor_id, outcome);
