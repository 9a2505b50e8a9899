/*
 * version.h - fleetd's version, and the Redis version it answers as.
 *
 * HELLO and INFO report FL_REDIS_COMPAT_VERSION as redis_version because
 * that is the Redis release whose GEO behaviour fleetd reproduces and is
 * tested against byte for byte; client libraries use it to pick features.
 */
#ifndef FL_VERSION_H
#define FL_VERSION_H

#define FL_VERSION "0.1.0"
#define FL_REDIS_COMPAT_VERSION "7.0.15"

#endif
