-- Read models of DESIGN.md ("Read models"): disposable, rebuilt by replaying CHIP_EVENTS.
-- Every timestamp a projection writes comes from an event (never now()), so a rebuild
-- produces byte-identical rows.

CREATE TABLE julia_chips (
    id UUID PRIMARY KEY,
    phone_number TEXT NOT NULL,            -- '' until Salvy assigns the number
    salvy_account_id TEXT,
    status TEXT NOT NULL,
    warmer_progress FLOAT DEFAULT 0,
    activated_at TIMESTAMPTZ,
    ready_at TIMESTAMPTZ,
    banned_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ DEFAULT now(),  -- the Provisioned event's time
    ddd INT,
    instance TEXT,
    host TEXT,
    warm_day INT NOT NULL DEFAULT 0,
    good_days INT NOT NULL DEFAULT 0,
    daily_cap INT NOT NULL DEFAULT 0,
    health_score FLOAT,
    cooling_until TIMESTAMPTZ,
    cool_reason TEXT,
    cooled_from TEXT,
    ban_reason TEXT,
    retired_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL,       -- the last applied event's time
    last_seq BIGINT NOT NULL               -- CHIP_EVENTS sequence of the last applied event
);
CREATE INDEX julia_chips_status ON julia_chips (status, id);
CREATE INDEX julia_chips_banned_at ON julia_chips (banned_at) WHERE banned_at IS NOT NULL;

CREATE TABLE chip_warmer_metrics (
    id UUID PRIMARY KEY,                   -- uuid5 of the event id: replays hit the same row
    chip_id UUID REFERENCES julia_chips(id),
    day_number INT,
    messages_sent INT,
    messages_received INT,
    created_at TIMESTAMPTZ DEFAULT now(),  -- the WarmDayCompleted event's time
    delivered INT NOT NULL DEFAULT 0,
    read INT NOT NULL DEFAULT 0,
    replied INT NOT NULL DEFAULT 0,
    failed INT NOT NULL DEFAULT 0,
    daily_cap INT NOT NULL DEFAULT 0,
    next_daily_cap INT NOT NULL DEFAULT 0,
    advanced BOOLEAN NOT NULL DEFAULT false,
    good_days INT NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    warmer_progress FLOAT NOT NULL DEFAULT 0,
    seq BIGINT NOT NULL
);
CREATE INDEX chip_warmer_metrics_chip ON chip_warmer_metrics (chip_id, day_number, seq);

-- The fleet brake (FLEET_EVENTS `fleet.evt.brake`): a single row, id = 1.
CREATE TABLE fleet_brake (
    id INT PRIMARY KEY CHECK (id = 1),
    engaged BOOLEAN NOT NULL,
    reason TEXT NOT NULL,
    until TIMESTAMPTZ,
    changed_at TIMESTAMPTZ NOT NULL,
    last_seq BIGINT NOT NULL
);

-- One row per projection: the last stream sequence whose effect is committed.
CREATE TABLE projection_checkpoints (
    name TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
