/**
 * The dashboard's gate, in front of Bull Board (which has no authentication of its own): basic
 * auth with roles, and a same-origin check on every state-changing request.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

import type { NextFunction, Request, Response } from 'express';

import { type DashboardRole, type DashboardUser, isLoopback } from './dashboard-options.js';

/** Set on `res.locals.role` for the handlers after the gate. */
export interface DashboardLocals {
  role: DashboardRole;
}

const digest = (text: Buffer | string): Buffer => createHash('sha256').update(text).digest();

/**
 * Basic auth against `users`; the matching user's role goes to `res.locals.role`. Every user is
 * compared, each in constant time over equal-length digests, so neither the match nor a name's
 * length shows in the timing. With no users the dashboard is open and everyone is admin (the
 * options refuse that beyond loopback).
 */
export function authenticate(users: Array<Required<DashboardUser>>) {
  const expected = users.map((user) => ({ role: user.role, digest: digest(`${user.user}:${user.password}`) }));
  return (req: Request, res: Response<unknown, DashboardLocals>, next: NextFunction): void => {
    if (expected.length === 0) {
      res.locals.role = 'admin';
      next();
      return;
    }
    const header = req.headers.authorization ?? '';
    const given = digest(header.startsWith('Basic ') ? Buffer.from(header.slice(6), 'base64') : Buffer.alloc(0));
    let role: DashboardRole | undefined;
    for (const user of expected) {
      if (timingSafeEqual(given, user.digest)) {
        role = user.role;
      }
    }
    if (role === undefined) {
      res.setHeader('WWW-Authenticate', 'Basic realm="tydra", charset="UTF-8"');
      res.status(401).send('authentication required');
      return;
    }
    res.locals.role = role;
    next();
  };
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function hostOf(url: string | undefined): string | undefined {
  try {
    return url === undefined ? undefined : new URL(url).host;
  } catch {
    return undefined;
  }
}

/**
 * CSRF guard: a state-changing request must come from a page of this dashboard. Browsers send
 * `Origin` on every such request (`Referer` as the fallback); another site's page, or a request
 * that names no origin at all, gets 403. Basic auth alone would not do: the browser replays the
 * credentials on a forged cross-site request too, and an open loopback dashboard has none.
 */
export function sameOrigin() {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (SAFE_METHODS.has(req.method)) {
      next();
      return;
    }
    const source = req.headers.origin ?? req.headers.referer;
    if (req.headers.host !== undefined && hostOf(source) === req.headers.host) {
      next();
      return;
    }
    res.status(403).json({
      error: 'cross-origin request refused',
      message: `Expected a ${req.method} from a page of this dashboard (Origin or Referer on host ${req.headers.host ?? '?'}), got ${source === undefined ? 'no Origin or Referer' : `one from ${hostOf(source) ?? 'an unreadable origin'}`}`,
    });
  };
}

/**
 * For an open dashboard on loopback: answer only requests addressed to a loopback name. A web
 * page can point a name it controls at 127.0.0.1 (DNS rebinding) and then read and drive an
 * open dashboard as a same-origin page; its requests carry that name in `Host`.
 */
export function loopbackHostsOnly() {
  return (req: Request, res: Response, next: NextFunction): void => {
    const hostname = hostOf(`http://${req.headers.host ?? ''}`)?.replace(/:\d+$/, '') ?? '';
    if (isLoopback(hostname) || hostname === '[::1]') {
      next();
      return;
    }
    res.status(403).json({
      error: 'host refused',
      message: `Expected a loopback host name (127.0.0.1, localhost, [::1]) for a dashboard without users, got \`${hostname}\``,
    });
  };
}

/** Refuses everything after it to a user without the admin role (tydra's own actions). */
export function adminOnly() {
  return (_req: Request, res: Response<unknown, DashboardLocals>, next: NextFunction): void => {
    if (res.locals.role === 'admin') {
      next();
      return;
    }
    res.status(403).json({ error: 'admin only', message: 'Expected an admin user, got a read-only one' });
  };
}
