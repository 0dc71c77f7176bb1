-- A chip the gateway logged out (Evolution `close` 401) while it is linked again (issue 14):
-- status `relinking`, and the columns of the try in progress. Disposable like 001's: a
-- rebuild replays them from `RelinkRequested` / `RelinkStarted` / `RelinkFailed` /
-- `Relinked`. The pairing code and the QR are kept only while the try lasts.
ALTER TABLE julia_chips
    ADD COLUMN relink_attempt INT NOT NULL DEFAULT 0,  -- the try in progress, 1-based; 0: none
    ADD COLUMN relink_since TIMESTAMPTZ,               -- the RelinkRequested's time
    ADD COLUMN relink_reason TEXT,                     -- the evidence of the logout
    ADD COLUMN relink_pairing_code TEXT,               -- the code to enter on the phone
    ADD COLUMN relink_qr TEXT;                         -- or the QR's text to scan
