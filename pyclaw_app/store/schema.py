"""Versioned schema. Append a migration; never edit one that has shipped.

``PRAGMA user_version`` (SQLite) or the ``schema_version`` table (PostgreSQL) holds how
many migrations ran. Written in SQLite's dialect; ``store/pg_sql.py`` translates the DDL.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "split_sql"]


def split_sql(script: str) -> list[str]:
    """A migration's statements (none of them holds a ``;`` inside a literal)."""
    return [s.strip() for s in script.split(";") if s.strip()]


MIGRATIONS: list[str] = [
    # 1: the journal, conversations, channel log, LLM calls, settings
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        channel TEXT NOT NULL,
        account TEXT NOT NULL DEFAULT '',
        chat TEXT NOT NULL,
        thread TEXT,
        conv TEXT NOT NULL,
        sender_id TEXT NOT NULL DEFAULT '',
        sender_name TEXT NOT NULL DEFAULT '',
        text TEXT NOT NULL,
        attachments TEXT,
        meta TEXT,
        platform_id TEXT,
        reply_to INTEGER REFERENCES messages(id),
        status TEXT NOT NULL,
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE UNIQUE INDEX messages_inbound_platform_id
        ON messages (channel, platform_id) WHERE direction = 'in';
    CREATE INDEX messages_conv ON messages (conv, id);
    CREATE INDEX messages_reply_to ON messages (reply_to) WHERE reply_to IS NOT NULL;
    CREATE INDEX messages_open ON messages (status)
        WHERE status IN ('received', 'processing', 'pending');
    CREATE INDEX messages_created ON messages (created_at);

    CREATE TABLE conversations (
        conv TEXT PRIMARY KEY,
        reset_after_id INTEGER NOT NULL DEFAULT 0,
        summary TEXT,
        updated_at REAL NOT NULL
    );

    CREATE TABLE channel_log (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        channel TEXT NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL,
        data TEXT
    );
    CREATE INDEX channel_log_channel ON channel_log (channel, id);

    CREATE TABLE llm_calls (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        message_id INTEGER,
        channel TEXT NOT NULL DEFAULT '',
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        latency_ms REAL NOT NULL DEFAULT 0,
        cost REAL NOT NULL DEFAULT 0,
        error TEXT
    );
    CREATE INDEX llm_calls_ts ON llm_calls (ts);

    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: the agent's per-user notes; per-conversation model choice, compaction point and
    # whether the user was already told that a fallback model answered
    """
    CREATE TABLE notes (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        user_id TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX notes_user ON notes (channel, user_id, id);

    ALTER TABLE conversations ADD COLUMN summary_until INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE conversations ADD COLUMN model TEXT;
    ALTER TABLE conversations ADD COLUMN fallback_notified INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: access control: pairing codes and the per-channel sender allowlist
    """
    CREATE TABLE pairing (
        code TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        sender_id TEXT NOT NULL,
        sender_name TEXT NOT NULL DEFAULT '',
        chat TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX pairing_pending ON pairing (channel, status, expires_at);

    CREATE TABLE allowlist (
        channel TEXT NOT NULL,
        sender_id TEXT NOT NULL,
        sender_name TEXT NOT NULL DEFAULT '',
        added_at REAL NOT NULL,
        via TEXT NOT NULL DEFAULT 'pairing',
        PRIMARY KEY (channel, sender_id)
    );
    """,
    # 4: one row per part of a reply, each with its own custody (written before it is sent,
    # so a part that went out is never sent again); a channel's own cursors and tokens
    """
    CREATE TABLE reply_parts (
        out_id INTEGER NOT NULL REFERENCES messages(id),
        idx INTEGER NOT NULL,
        text TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'uncertain', 'failed')),
        platform_id TEXT,
        error TEXT,
        updated_at REAL NOT NULL,
        PRIMARY KEY (out_id, idx)
    );

    CREATE TABLE channel_state (
        channel TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (channel, key)
    );
    """,
    # 5: inbound payloads the journal could not store, kept raw with the reason (the
    # platform is acknowledged, so one poison message cannot stop its channel)
    """
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        channel TEXT NOT NULL,
        platform_id TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL,
        raw BLOB NOT NULL
    );
    CREATE INDEX dead_letters_channel ON dead_letters (channel, id);
    """,
    # 6: group chats the owner approved (or refused) for group_policy allowlist, and the
    # requests waiting for a decision, like pairing for senders
    """
    CREATE TABLE group_access (
        channel TEXT NOT NULL,
        chat TEXT NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        requested_by TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
        created_at REAL NOT NULL,
        decided_at REAL,
        PRIMARY KEY (channel, chat)
    );
    CREATE INDEX group_access_pending ON group_access (channel, status);
    """,
    # 7: scheduled jobs (one-off or cron, each in a time zone) and the occurrences that
    # fired or were skipped, one row each: (job, occurrence) is unique, so an occurrence is
    # journaled once even across restarts and clock jumps. A firing is a journal row in
    # 'scheduled' until its message is delivered.
    """
    CREATE TABLE schedules (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        account TEXT NOT NULL DEFAULT '',
        chat TEXT NOT NULL,
        thread TEXT,
        conv TEXT NOT NULL,
        created_by TEXT NOT NULL,
        creator_name TEXT NOT NULL DEFAULT '',
        is_group INTEGER NOT NULL DEFAULT 0,
        action TEXT NOT NULL CHECK (action IN ('text', 'task')),
        body TEXT NOT NULL,
        at REAL,
        cron TEXT,
        tz TEXT NOT NULL,
        missed TEXT NOT NULL CHECK (missed IN ('run_once', 'skip')),
        enabled INTEGER NOT NULL DEFAULT 1,
        next_run REAL,
        last_run REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        CHECK ((at IS NULL) <> (cron IS NULL))
    );
    CREATE INDEX schedules_due ON schedules (next_run)
        WHERE enabled = 1 AND next_run IS NOT NULL;
    CREATE INDEX schedules_conv ON schedules (conv, id);

    CREATE TABLE schedule_runs (
        job_id INTEGER NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
        scheduled_for REAL NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('fired', 'skipped')),
        message_id INTEGER REFERENCES messages(id),
        created_at REAL NOT NULL,
        PRIMARY KEY (job_id, scheduled_for)
    );
    CREATE INDEX schedule_runs_message ON schedule_runs (message_id)
        WHERE message_id IS NOT NULL;
    CREATE INDEX messages_scheduled ON messages (id) WHERE status = 'scheduled';
    """,
    # 8: one person, several accounts (identities, identity_accounts: linked with one-time
    # link_codes, wrong codes counted in link_failures); the direct conversations of each
    # sender, whose summaries are that person's memory elsewhere; notes.chat: NULL for a
    # note made in a direct message (the person's), the group's chat id for one made in a
    # group (the group's); messages by sender, for one person's logs
    """
    CREATE TABLE identities (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );

    CREATE TABLE identity_accounts (
        channel TEXT NOT NULL,
        sender_id TEXT NOT NULL,
        sender_name TEXT NOT NULL DEFAULT '',
        identity_id INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
        via TEXT NOT NULL CHECK (via IN ('code', 'owner')),
        linked_at REAL NOT NULL,
        PRIMARY KEY (channel, sender_id)
    );
    CREATE INDEX identity_accounts_identity ON identity_accounts (identity_id);

    CREATE TABLE link_codes (
        code TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        sender_id TEXT NOT NULL,
        sender_name TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL,
        used_by TEXT
    );
    CREATE INDEX link_codes_sender ON link_codes (channel, sender_id, created_at);

    CREATE TABLE link_failures (
        channel TEXT NOT NULL,
        sender_id TEXT NOT NULL,
        ts REAL NOT NULL
    );
    CREATE INDEX link_failures_sender ON link_failures (channel, sender_id, ts);

    CREATE TABLE dm_conversations (
        conv TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        sender_id TEXT NOT NULL
    );
    CREATE INDEX dm_conversations_sender ON dm_conversations (channel, sender_id);

    ALTER TABLE notes ADD COLUMN chat TEXT;
    CREATE INDEX notes_group ON notes (channel, chat, id) WHERE chat IS NOT NULL;
    CREATE INDEX messages_sender ON messages (channel, sender_id) WHERE direction = 'in';
    """,
    # 9: what became of each attachment of an inbound message: where its file is stored
    # (relative to <data>/attachments; NULL once retention removed it or when it was never
    # kept), the transcript of a voice note, or why it could not be read. The bytes are
    # files, never rows.
    """
    CREATE TABLE attachment_files (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id),
        idx INTEGER NOT NULL,
        channel TEXT NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        mime TEXT NOT NULL DEFAULT '',
        size INTEGER,
        path TEXT,
        transcript TEXT,
        error TEXT,
        created_at REAL NOT NULL,
        removed_at REAL,
        UNIQUE (message_id, idx)
    );
    CREATE INDEX attachment_files_kept ON attachment_files (created_at) WHERE path IS NOT NULL;
    """,
    # 10: bursts (``burst: collect``): each inbound message of a set answered together by one
    # turn names the set's last message, whose reply (``reply_to``) answers them all; NULL
    # for a message answered alone
    """
    ALTER TABLE messages ADD COLUMN answered_with INTEGER;
    CREATE INDEX messages_answered_with ON messages (answered_with)
        WHERE answered_with IS NOT NULL;
    """,
    # 11: what the conversation view reads per page (control/conversation.py): the LLM calls
    # of a page's messages, and the tool lines their turns wrote in the page's time
    """
    CREATE INDEX llm_calls_message ON llm_calls (message_id) WHERE message_id IS NOT NULL;
    CREATE INDEX channel_log_ts ON channel_log (ts);
    """,
    # 12: scheduled jobs re-checked at fire time: why a job was paused by the gateway (its
    # creator's access was revoked; NULL for a job paused by hand or running) and why a run
    # was skipped; schedule_runs by age, for retention
    """
    ALTER TABLE schedules ADD COLUMN paused_reason TEXT;
    ALTER TABLE schedule_runs ADD COLUMN reason TEXT;
    CREATE INDEX schedule_runs_created ON schedule_runs (created_at);
    """,
    # 13: files the assistant sends are reply parts too (custody as for text): the part's
    # file, as JSON (name, MIME type, kind, caption and its path under the data directory's
    # attachments), so Retry can send it again from where it is stored; NULL for text
    """
    ALTER TABLE reply_parts ADD COLUMN file TEXT;
    """,
]
