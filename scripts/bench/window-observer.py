"""An X client that watches windows change, for bench:sync's real-output mode (scripts/bench/window-observer.ts).

Usage: window-observer.py DISPLAY OUT TITLE[,TITLE...] WIDTH HEIGHT BLOCK

It waits for the top-level windows named TITLE (the first one up to a minute, the others as they appear), asks the X server for damage reports on each (the DAMAGE extension,
XDamageReportNonEmpty), and at each report: reads CLOCK_MONOTONIC, clears the damage, reads the window's pixels back
(XGetSubImage, WIDTH x HEIGHT from its corner) and, when they differ from the window's previous picture (MD5 of the
pixels), appends one record to OUT: int64 mono_ns, int32 window index, uint32 the report's X server timestamp (ms;
Xvfb's clock is CLOCK_MONOTONIC), then the picture averaged over BLOCK x BLOCK squares, rgb24 (numpy). Started at
SCHED_FIFO by bench:sync (chrt), it runs at that priority all through. The instant is when the X server had the new picture in the window: what a display scanning
out the screen would show from then on. Prints one JSON line when the first window is watched ({"ready": true}), and at
SIGTERM a JSON line of counters (damage reports and changes per window).

Only the X server's own reports are used: nothing of the programs drawing into the windows.
"""
import ctypes
import ctypes.util
import hashlib
import json
import select
import signal
import struct
import sys
import time

import numpy as np

display_name, out_path, titles, width, height, block = sys.argv[1], sys.argv[2], sys.argv[3].split(','), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])

x = ctypes.CDLL(ctypes.util.find_library('X11'))
xd = ctypes.CDLL(ctypes.util.find_library('Xdamage'))
ulong, vp = ctypes.c_ulong, ctypes.c_void_p
x.XOpenDisplay.restype = vp
x.XOpenDisplay.argtypes = [ctypes.c_char_p]
x.XDefaultRootWindow.restype = ulong
x.XDefaultRootWindow.argtypes = [vp]
x.XQueryTree.argtypes = [vp, ulong, ctypes.POINTER(ulong), ctypes.POINTER(ulong), ctypes.POINTER(ctypes.POINTER(ulong)), ctypes.POINTER(ctypes.c_uint)]
x.XFetchName.argtypes = [vp, ulong, ctypes.POINTER(ctypes.c_char_p)]
x.XFree.argtypes = [vp]
x.XNextEvent.argtypes = [vp, vp]
x.XPending.argtypes = [vp]
x.XFlush.argtypes = [vp]
x.XSync.argtypes = [vp, ctypes.c_int]
x.XGetImage.restype = vp
x.XGetImage.argtypes = [vp, ulong, ctypes.c_int, ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ulong, ctypes.c_int]
x.XGetSubImage.restype = vp
x.XGetSubImage.argtypes = [vp, ulong, ctypes.c_int, ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ulong, ctypes.c_int, vp, ctypes.c_int, ctypes.c_int]
x.XSetErrorHandler.argtypes = [vp]
x.XConnectionNumber.argtypes = [vp]
xd.XDamageQueryExtension.argtypes = [vp, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
xd.XDamageCreate.restype = ulong
xd.XDamageCreate.argtypes = [vp, ulong, ctypes.c_int]
xd.XDamageSubtract.argtypes = [vp, ulong, ulong, ulong]

ZPIXMAP = 2
ALL_PLANES = 0xFFFFFFFF
REPORT_NON_EMPTY = 3


class XImage(ctypes.Structure):
    # The head of Xlib's XImage (the function table after it is not used).
    _fields_ = [('width', ctypes.c_int), ('height', ctypes.c_int), ('xoffset', ctypes.c_int), ('format', ctypes.c_int),
                ('data', ctypes.c_void_p), ('byte_order', ctypes.c_int), ('bitmap_unit', ctypes.c_int),
                ('bitmap_bit_order', ctypes.c_int), ('bitmap_pad', ctypes.c_int), ('depth', ctypes.c_int),
                ('bytes_per_line', ctypes.c_int), ('bits_per_pixel', ctypes.c_int)]


# A window that goes away (its player stops) makes XGetSubImage fail with BadMatch: ignored, not fatal.
ERROR_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, vp, vp)(lambda d, e: 0)
x.XSetErrorHandler(ERROR_HANDLER)

dpy = x.XOpenDisplay(display_name.encode())
if not dpy:
    sys.exit('cannot open display ' + display_name)
event_base, error_base = ctypes.c_int(), ctypes.c_int()
if not xd.XDamageQueryExtension(dpy, ctypes.byref(event_base), ctypes.byref(error_base)):
    sys.exit('the X server has no DAMAGE extension')
root = x.XDefaultRootWindow(dpy)
fd = x.XConnectionNumber(dpy)


def find(title):
    r, p, n = ulong(), ulong(), ctypes.c_uint()
    ch = ctypes.POINTER(ulong)()
    x.XQueryTree(dpy, root, ctypes.byref(r), ctypes.byref(p), ctypes.byref(ch), ctypes.byref(n))
    found = None
    for i in range(n.value):
        name = ctypes.c_char_p()
        if x.XFetchName(dpy, ch[i], ctypes.byref(name)) and name.value == title.encode():
            found = ch[i]
        if name.value is not None:
            x.XFree(name)
    if ch:
        x.XFree(ch)
    return found


windows = [None] * len(titles)
by_damage = {}


def attach():
    """Watch the windows that exist now; True once all are watched."""
    for i, title in enumerate(titles):
        if windows[i] is not None:
            continue
        w = find(title)
        if w is None:
            continue
        got = x.XGetImage(dpy, w, 0, 0, width, height, ALL_PLANES, ZPIXMAP)
        if not got:
            continue  # not mapped yet, or smaller than WIDTH x HEIGHT for now: looked at again later
        image = ctypes.cast(got, ctypes.POINTER(XImage))
        if image.contents.bits_per_pixel != 32:
            sys.exit('cannot read window ' + title + ' back as 32-bit pixels')
        damage = xd.XDamageCreate(dpy, w, REPORT_NON_EMPTY)
        windows[i] = {'title': title, 'window': w, 'damage': damage, 'image': image, 'md5': None, 'reports': 0, 'changes': 0}
        by_damage[damage] = i
    x.XSync(dpy, 0)
    return all(win is not None for win in windows)


# The first window must exist within a minute; the others are watched as they appear (a player's window may open only
# with its first picture), looked for every 0.1 s.
deadline = time.monotonic() + 60
while not attach() and windows[0] is None:
    if time.monotonic() > deadline:
        sys.exit('no window named ' + titles[0] + ' on ' + display_name)
    time.sleep(0.05)
all_attached = all(win is not None for win in windows)
next_look = time.monotonic() + 0.1

out = open(out_path, 'wb', buffering=1 << 20)
stopping = False


def stop(*_):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)
print(json.dumps({'ready': True}), flush=True)

event = (ctypes.c_long * 24)()
rows, cols = height // block, width // block
# At the priority it was started with (SCHED_FIFO when allowed), all through: the instant must be read as soon as a
# report arrives, and the pixels before the next picture replaces them. Tried: waiting at SCHED_FIFO and reading back
# at normal priority, on a loaded machine (load average 20), read reports up to 239 ms after the X server's timestamp
# (p99 121 ms) instead of 1 ms.
while not stopping:
    # XNextEvent blocks in C, where SIGTERM would not wake it: wait on the connection's socket instead.
    if not all_attached and time.monotonic() >= next_look:
        all_attached = attach()
        next_look = time.monotonic() + 0.1
    if x.XPending(dpy) == 0:
        select.select([fd], [], [], 0.02 if not all_attached else 0.1)
        continue
    x.XNextEvent(dpy, ctypes.byref(event))
    t = time.monotonic_ns()

    # XDamageNotifyEvent: int type; unsigned long serial; Bool send_event; Display *; Drawable; Damage; ...
    if ctypes.c_int.from_buffer(event).value != event_base.value:
        continue
    i = by_damage.get(event[5])
    if i is None:
        continue
    win = windows[i]
    win['reports'] += 1
    # XDamageNotifyEvent's timestamp (after level and more): the X server's time of the report, ms.
    server_ms = ctypes.c_ulong.from_buffer(event, 56).value & 0xFFFFFFFF
    xd.XDamageSubtract(dpy, win['damage'], 0, 0)
    img = win['image'].contents
    if not x.XGetSubImage(dpy, win['window'], 0, 0, width, height, ALL_PLANES, ZPIXMAP, win['image'], 0, 0):
        continue
    raw = ctypes.string_at(img.data, img.bytes_per_line * height)
    digest = hashlib.md5(raw).digest()
    if digest == win['md5']:
        continue
    win['md5'] = digest
    win['changes'] += 1
    px = np.frombuffer(raw, np.uint8).reshape(height, img.bytes_per_line // 4, 4)[:rows * block, :cols * block, 2::-1]
    thumb = px.reshape(rows, block, cols, block, 3).mean(axis=(1, 3), dtype=np.float32)
    out.write(struct.pack('<qiI', t, i, server_ms))
    out.write(np.rint(thumb).astype(np.uint8).tobytes())
out.close()
print(json.dumps({t: {'reports': w['reports'], 'changes': w['changes']} if w else None for t, w in zip(titles, windows)}), flush=True)
