-- Templates, their immutable versions, and who made which version active when.

CREATE TABLE templates (
    code text PRIMARY KEY,
    name text NOT NULL,
    description text NOT NULL,
    default_language text NOT NULL,
    active_version integer NOT NULL,
    latest_version integer NOT NULL,
    archived boolean NOT NULL DEFAULT false,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    CHECK (active_version BETWEEN 1 AND latest_version)
);

CREATE TABLE template_versions (
    code text NOT NULL REFERENCES templates (code),
    version integer NOT NULL CHECK (version > 0),
    contents jsonb NOT NULL,
    variables text[] NOT NULL,
    author text NOT NULL,
    change_note text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (code, version)
);

-- A template row is inserted before its first version: checked at commit.
ALTER TABLE templates
    ADD CONSTRAINT templates_active_version_fkey
    FOREIGN KEY (code, active_version) REFERENCES template_versions (code, version)
    DEFERRABLE INITIALLY DEFERRED;

-- Audit of activations: creation, publication, roll back or forward.
CREATE TABLE template_activations (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code text NOT NULL,
    version integer NOT NULL,
    reason text NOT NULL CHECK (reason IN ('create', 'publish', 'set_active')),
    author text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (code, version) REFERENCES template_versions (code, version)
        DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX template_activations_code_idx ON template_activations (code, id);

-- Published content never changes: the render caches of every process rely on it.
CREATE FUNCTION template_versions_are_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'template versions are immutable (% %)', OLD.code, OLD.version;
END
$$;

CREATE TRIGGER template_versions_are_immutable
    BEFORE UPDATE OR DELETE ON template_versions
    FOR EACH ROW EXECUTE FUNCTION template_versions_are_immutable();
