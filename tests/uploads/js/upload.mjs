// Uploads one file to a seau server with the official tus-js-client, unmodified.
//
//   node upload.mjs ENDPOINT TOKEN FILE STATE_FILE [CHUNK_SIZE] [MODE]
//
// TOKEN may be a comma-separated list: request n (POST, PATCH, HEAD...) carries the
// n-th token, the last one from then on, swapped in by onBeforeRequest as an app
// would swap in a refreshed token.
// STATE_FILE is tus-js-client's own FileUrlStorage: run again with the same file
// and it resumes the earlier upload of FILE (findPreviousUploads). MODE is
// "plain", "with-upload" (creation-with-upload) or "deferred" (creation-defer-length,
// reading FILE as a stream of unknown size; needs CHUNK_SIZE).
// Prints one JSON line per event; exits 0 once the upload succeeded.
import fs from 'node:fs'
import path from 'node:path'
import { PassThrough } from 'node:stream'
import { Upload, FileUrlStorage } from 'tus-js-client'

const [endpoint, token, file, stateFile, chunkArg, mode = 'plain'] = process.argv.slice(2)
const chunkSize = chunkArg ? Number(chunkArg) : Number.POSITIVE_INFINITY
const say = (event) => process.stdout.write(`${JSON.stringify(event)}\n`)
const tokens = token.split(',')
let requests = 0

// A deferred length is for sources of unknown size: a plain stream, not a file.
const source =
  mode === 'deferred' ? fs.createReadStream(file).pipe(new PassThrough()) : fs.createReadStream(file)

const upload = new Upload(source, {
  endpoint,
  chunkSize,
  onBeforeRequest: (request) => {
    const index = Math.min(requests, tokens.length - 1)
    requests += 1
    request.setHeader('Authorization', `Bearer ${tokens[index]}`)
    say({ event: 'request', method: request.getMethod(), token: index })
  },
  metadata: { filename: path.basename(file), filetype: 'application/octet-stream' },
  urlStorage: new FileUrlStorage(stateFile),
  uploadDataDuringCreation: mode === 'with-upload',
  uploadLengthDeferred: mode === 'deferred',
  // Enough patience for a server that restarts, and for its lock to expire.
  retryDelays: [0, 500, 1000, 1000, 1000, 2000, 2000, 2000, 3000, 3000, 3000, 5000, 5000],
  onUploadUrlAvailable: () => say({ event: 'url', url: upload.url }),
  onChunkComplete: (size, sent, total) => say({ event: 'chunk', sent, total }),
  onError: (error) => {
    say({ event: 'error', message: String(error) })
    process.exit(1)
  },
  // Exit at once: a keep-alive socket left from a request the crashed server never
  // answered can keep Node's event loop alive after the upload has succeeded.
  onSuccess: () =>
    process.stdout.write(`${JSON.stringify({ event: 'success', url: upload.url })}\n`, () =>
      process.exit(0),
    ),
})

const previous = await upload.findPreviousUploads()
if (previous.length > 0) {
  say({ event: 'resume', url: previous[0].uploadUrl })
  upload.resumeFromPreviousUpload(previous[0])
}
upload.start()
