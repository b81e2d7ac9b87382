-- Workspace builds a host reports (`POST /api/v2/builds`), kept 7 days (purged with the
-- messages) for the weekly "Report: Workspace Builds Failed". A build is known by its
-- workspace and number, so a host reporting one again replaces it rather than counting it
-- twice. Owners and templates are the host's: no foreign keys (a host may bring its own user
-- directory). When the report last ran is kept in `report_log` (0001).
CREATE TABLE workspace_builds (
    workspace_id          uuid        NOT NULL,
    build_number          bigint      NOT NULL
        CONSTRAINT workspace_builds_build_number_check CHECK (build_number >= 1),
    workspace_name        text        NOT NULL,
    owner_id              uuid        NOT NULL,
    template_id           uuid        NOT NULL,
    template_name         text        NOT NULL,
    template_display_name text        NOT NULL,
    template_version      text        NOT NULL,
    transition            text        NOT NULL
        CONSTRAINT workspace_builds_transition_check CHECK (transition IN ('start', 'stop', 'delete')),
    status                text        NOT NULL
        CONSTRAINT workspace_builds_status_check CHECK (status IN ('succeeded', 'failed')),
    initiator             text        NOT NULL
        CONSTRAINT workspace_builds_initiator_check CHECK (initiator IN ('manual', 'autostart')),
    created_at            timestamptz NOT NULL,
    CONSTRAINT workspace_builds_pkey PRIMARY KEY (workspace_id, build_number)
);

-- The report reads a week of builds, and the purge deletes the older ones, both by time.
CREATE INDEX workspace_builds_created_at_idx ON workspace_builds (created_at);
