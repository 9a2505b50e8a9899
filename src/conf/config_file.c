/*
 * config_file.c - loads fleetd.yaml: one flat YAML mapping of settings
 * named as CONFIG GET names them (port, http-port, dir, requirepass, ...).
 *
 * libyaml's event parser is used rather than its document loader because a
 * flat mapping needs no tree, and the events carry the line numbers that a
 * refused file must report ("line 4: 'maxclients': argument must be within
 * the allowed range"). Nested mappings are refused for now; sections for
 * SLOs and fleets arrive with the issues that need them.
 */
#include "config_file.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "../cmd/server.h"

static int fail(char *err, size_t errlen, size_t line, const char *what)
{
    snprintf(err, errlen, "line %zu: %s", line + 1, what);
    return -1;
}

/* Consumes events of the top-level mapping, applying key/value pairs. */
static int apply_mapping(yaml_parser_t *p, fl_config *cfg, char *err,
                         size_t errlen)
{
    char key[128];
    int have_key = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(p, &ev))
            return fail(err, errlen, p->problem_mark.line,
                        p->problem ? p->problem : "YAML syntax error");
        yaml_event_type_t type = ev.type;
        size_t line = ev.start_mark.line;
        int rc = 0;
        if (type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        if (type != YAML_SCALAR_EVENT) {
            rc = fail(err, errlen, line, "expected 'setting: value' pairs");
        } else if (!have_key) {
            snprintf(key, sizeof(key), "%s", (const char *)ev.data.scalar.value);
            have_key = 1;
        } else {
            char why[256];
            if (fl_config_set_param(cfg, key, (const char *)ev.data.scalar.value,
                                    why, sizeof(why)) != 0)
                rc = fail(err, errlen, line, why);
            have_key = 0;
        }
        yaml_event_delete(&ev);
        if (rc != 0) return rc;
    }
}

static int parse_stream(yaml_parser_t *p, fl_config *cfg, char *err,
                        size_t errlen)
{
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(p, &ev))
            return fail(err, errlen, p->problem_mark.line,
                        p->problem ? p->problem : "YAML syntax error");
        yaml_event_type_t type = ev.type;
        size_t line = ev.start_mark.line;
        yaml_event_delete(&ev);
        if (type == YAML_STREAM_END_EVENT) return 0;
        if (type == YAML_MAPPING_START_EVENT) {
            if (apply_mapping(p, cfg, err, errlen) != 0) return -1;
        } else if (type == YAML_SCALAR_EVENT || type == YAML_SEQUENCE_START_EVENT) {
            return fail(err, errlen, line, "the file must be a mapping of settings");
        }
    }
}

int fl_config_load_file(const char *path, fl_config *cfg, char *err,
                        size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        fclose(f);
        snprintf(err, errlen, "cannot initialise the YAML parser");
        return -1;
    }
    yaml_parser_set_input_file(&p, f);
    fl_config next = *cfg;
    char why[384];
    int rc = parse_stream(&p, &next, why, sizeof(why));
    yaml_parser_delete(&p);
    fclose(f);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    *cfg = next;
    snprintf(cfg->config_file, sizeof(cfg->config_file), "%s", path);
    return 0;
}
