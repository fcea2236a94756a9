/* Tampering with the audit log the way someone editing the file would:
   these temporary triggers (this connection only) turn an UPDATE or a
   one-row DELETE of a record in the view `audit` into the edit of its
   element in its audit_block row. Used by unit.audit and e2e.policy. */
CREATE TEMP TRIGGER IF NOT EXISTS audit_edit INSTEAD OF UPDATE ON audit BEGIN
  UPDATE audit_block SET rows = json_replace(rows, '$[' || (OLD.id - id) || ']',
    json_array(NEW.time_ms, NEW.kind, NEW.bot, NEW.session, NEW.transport, NEW.resource,
      NEW.tool, NEW.location, NEW.decision, NEW.reason, NEW.args, NEW.args_truncated,
      NEW.args_digest, NEW.status, NEW.latency_us, NEW.hash))
  WHERE id <= OLD.id AND id + n > OLD.id;
END;
CREATE TEMP TRIGGER IF NOT EXISTS audit_drop INSTEAD OF DELETE ON audit BEGIN
  UPDATE audit_block SET rows = json_remove(rows, '$[' || (OLD.id - id) || ']'), n = n - 1
  WHERE id <= OLD.id AND id + n > OLD.id;
  DELETE FROM audit_block WHERE n = 0;
END;
