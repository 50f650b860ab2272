"""Pure; imports nothing. Replay data: serving recorded or downloaded market data as if live.

The package marker imports none of its modules, so importing a pure one (the server imports
``ticker.replay.control``) loads no pandas. Import names from their modules:

- :mod:`~ticker.replay.errors`: ``ReplayError``, for data or requests that cannot be replayed.
- :mod:`~ticker.replay.control`: parsing the speed option and ``POST /api/replay`` commands.
- :mod:`~ticker.replay.options`: the replay feed's options, also the ``ticker replay`` flags.
- :mod:`~ticker.replay.clock`: the replay clock (speed, pause, seek; takes ``now``, no I/O).
- :mod:`~ticker.replay.columns`: column detection: a table's layout from its column names.
- :mod:`~ticker.replay.times`: time parsing: any column of times -> epoch ms (pandas).
- :mod:`~ticker.replay.tape`: the tape, a replay's rows as column arrays, and what a seek
  replays (pandas).
- :mod:`~ticker.replay.normalise`: a DataFrame -> its layout and a tape, bad rows counted.
- :mod:`~ticker.replay.emit`: the events (ticks, bars, news) of a tape's rows.
- :mod:`~ticker.replay.files`: the I/O shell: reading CSV, gzip, Parquet and journals.

Dependencies point one way: control, columns and times use errors; options uses control and
columns (times only when a time is given); normalise uses columns, times and tape; emit uses tape;
files uses normalise and tape. The clock uses none of them.
"""
