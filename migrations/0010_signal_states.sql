-- Host signals (DESIGN §10.5): the last reported state of each watched resource and of each
-- task, shared by every replica so that a crossing or a change of state is announced once.
-- Both are moved by one atomic statement each (see herald-postgres `signal_states.rs`).

-- Per workspace agent and resource (`memory`, or a volume by its path): whether it was over its
-- threshold when last reported, and since when.
CREATE TABLE resource_states (
    workspace_id uuid        NOT NULL,
    agent        text        NOT NULL,
    kind         text        NOT NULL,
    path         text        NOT NULL,
    over         boolean     NOT NULL,
    changed_at   timestamptz NOT NULL,
    CONSTRAINT resource_states_pkey PRIMARY KEY (workspace_id, agent, kind, path),
    -- Memory has no path; a volume always has one.
    CONSTRAINT resource_states_kind CHECK (
        (kind = 'memory' AND path = '') OR (kind = 'volume' AND path <> '')
    )
);

-- Per task: the state it was last reported in.
CREATE TABLE task_states (
    task_id     uuid        NOT NULL,
    state       text        NOT NULL,
    reported_at timestamptz NOT NULL,
    CONSTRAINT task_states_pkey PRIMARY KEY (task_id),
    CONSTRAINT task_states_state CHECK (state IN ('working', 'idle', 'complete', 'failed'))
);
