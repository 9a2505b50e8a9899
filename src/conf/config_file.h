/*
 * config_file.h - reading the YAML configuration file.
 */
#ifndef FL_CONF_CONFIG_FILE_H
#define FL_CONF_CONFIG_FILE_H

#include <stddef.h>

struct fl_config;

/* Applies the settings in path to cfg, all or nothing: on any error cfg is
 * unchanged and err says which line and why. Returns 0 or -1. */
int fl_config_load_file(const char *path, struct fl_config *cfg, char *err,
                        size_t errlen);

#endif
